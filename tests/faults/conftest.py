"""Fixtures shared by the fault modules: the golden inputs and outputs, made once per session.

Every test treats them as read-only (a test that damages an output copies it first).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_pipeline_faults import TRAIN_ARGS, run


@pytest.fixture(scope="session")
def golden(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("golden")
    inputs = root / "inputs"
    result = run("kemp_kg", ["sample", "--to", str(inputs)], cwd=root)
    assert result.returncode == 0, result.stderr
    knowledge_v2 = inputs / "knowledge_v2.tsv"
    knowledge_v2.write_text(
        (inputs / "knowledge.tsv").read_text() + "kempfault\tRelatedTo\tsentinel\t1.0\n"
    )
    for argv in (
        [
            "build-index",
            str(inputs / "knowledge.tsv"),
            "--lexicon",
            str(inputs / "lexicon.tsv"),
            "--index",
            str(root / "index"),
        ],
        [
            "enrich",
            str(inputs / "dialogues.jsonl"),
            "--index",
            str(root / "index"),
            "--out",
            str(root / "graphs.arrow"),
        ],
    ):
        result = run("kemp_kg", argv, cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
    return {
        "root": root,
        "inputs": inputs,
        "knowledge_v2": knowledge_v2,
        "index": root / "index",
        "graphs": root / "graphs.arrow",
    }


@pytest.fixture(scope="session")
def golden_run(golden: dict[str, Path]) -> Path:
    run_dir = golden["root"] / "run"
    result = run("kemp_model", TRAIN_ARGS(golden["graphs"], run_dir, steps=2), cwd=golden["root"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir
