"""`kemp-kg sample`, `enrich` and `inspect` end to end: outputs, summaries, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kemp_kg import schema


def kemp_kg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kemp-kg")
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NLTK_DATA": os.environ["NLTK_DATA"]}
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=env
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, nltk_data: Path) -> Path:
    """sample -> build-index -> enrich, as `just demo` runs them."""
    folder = tmp_path_factory.mktemp("demo")
    run = kemp_kg("sample", "--to", "s", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (folder / "s").iterdir()) == [
        "dialogues.jsonl",
        "knowledge.tsv",
        "lexicon.tsv",
    ]
    run = kemp_kg(
        "build-index",
        "s/knowledge.tsv",
        "--lexicon",
        "s/lexicon.tsv",
        "--index",
        "s/index",
        cwd=folder,
    )
    assert run.returncode == 0, run.stderr
    run = kemp_kg(
        "enrich", "s/dialogues.jsonl", "--index", "s/index", "--out", "g.arrow", cwd=folder
    )
    assert run.returncode == 0, run.stderr
    assert "examples train" in run.stdout and "80" in run.stdout
    return folder


def test_enrich_default_output_opens_with_all_splits(demo: Path) -> None:
    graphs = schema.open_graphs(demo / "g.arrow")
    assert sorted(set(graphs.table["split"].to_pylist())) == ["test", "train", "valid"]
    assert len(graphs) == 120  # 60 dialogues x 2 listener turns
    assert graphs.provenance["preset"] == "sense"


def test_threshold_flags_land_in_provenance(demo: Path) -> None:
    run = kemp_kg(
        "enrich",
        "s/dialogues.jsonl",
        "--index",
        "s/index",
        "--out",
        "o.arrow",
        "--preset",
        "official",
        "--top-k-per-token",
        "2",
        "--min-intensity",
        "0.5",
        "--exclude-relations",
        "Antonym,IsA",
        "--min-count",
        "2",
        cwd=demo,
    )
    assert run.returncode == 0, run.stderr
    graphs = schema.open_graphs(demo / "o.arrow")
    thresholds = graphs.provenance["thresholds"]
    assert thresholds["preset"] == "official" and thresholds["top_k_per_token"] == 2
    assert thresholds["min_concept_intensity"] == 0.5 and thresholds["min_confidence"] == 1.0
    assert thresholds["excluded_relations"] == ["Antonym", "IsA"] and thresholds["min_count"] == 2
    assert all(x >= 0.5 for row in graphs.table["concept_intensity"].to_pylist() for x in row)
    isa = schema.RELATION_INDEX["IsA"]
    assert all(r != isa for row in graphs.table["concept_relation"].to_pylist() for r in row)


def test_inspect_prints_history_concepts_edges_and_plots(demo: Path) -> None:
    run = kemp_kg("inspect", "g.arrow", "--example", "1", "--plot", "g.png", cwd=demo)
    assert run.returncode == 0, run.stderr
    for part in ("history -> target", "concepts", "temporary", "emotion", "globality"):
        assert part in run.stdout
    assert (demo / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out_of_range = kemp_kg("inspect", "g.arrow", "--example", "500", cwd=demo)
    assert out_of_range.returncode == 2 and "out of range" in out_of_range.stderr


def test_bad_input_skips_by_default_and_strict_exits_2(demo: Path) -> None:
    lines = (demo / "s" / "dialogues.jsonl").read_text().splitlines()
    bad = (
        lines[:5]
        + ['{"id": "x", "split": "train", "emotion": "hangry", "turns": []}', "{broken"]
        + lines[5:]
    )
    (demo / "bad.jsonl").write_text("\n".join(bad) + "\n")
    run = kemp_kg("enrich", "bad.jsonl", "--index", "s/index", "--out", "b.arrow", cwd=demo)
    assert run.returncode == 0, run.stderr
    assert "skipped: malformed_record" in run.stdout and "skipped: unknown_emotion" in run.stdout
    strict = kemp_kg(
        "enrich", "bad.jsonl", "--index", "s/index", "--out", "c.arrow", "--strict", cwd=demo
    )
    assert strict.returncode == 2
    assert strict.stderr.strip().count("\n") == 0 and "bad.jsonl:6" in strict.stderr
    assert not (demo / "c.arrow").exists()


def test_user_errors_are_one_line_with_exit_codes(demo: Path) -> None:
    no_index = kemp_kg("enrich", "s/dialogues.jsonl", "--index", "nowhere", cwd=demo)
    assert no_index.returncode == 3 and "build-index" in no_index.stderr
    assert no_index.stderr.strip().count("\n") == 0
    no_file = kemp_kg("enrich", "nothing.jsonl", "--index", "s/index", cwd=demo)
    assert no_file.returncode == 2 and "nothing.jsonl" in no_file.stderr
    bad_preset = kemp_kg(
        "enrich", "s/dialogues.jsonl", "--index", "s/index", "--preset", "x", cwd=demo
    )
    assert bad_preset.returncode == 2 and "unknown preset" in bad_preset.stderr
    bad_shard = kemp_kg(
        "enrich", "s/dialogues.jsonl", "--index", "s/index", "--shard", "3/2", cwd=demo
    )
    assert bad_shard.returncode == 2 and "shard" in bad_shard.stderr
    again = kemp_kg("sample", "--to", "s", cwd=demo)
    assert again.returncode == 1 and "--force" in again.stderr


def test_sample_dialogues_cover_splits_and_every_emotion() -> None:
    from kemp_kg.samples_data import sample_bytes

    records = [json.loads(line) for line in sample_bytes("dialogues.jsonl").decode().splitlines()]
    assert records[0] == {"format": "kemp-dialogues/1"}
    dialogues = records[1:]
    assert len(dialogues) == 60
    assert {d["split"] for d in dialogues} == {"train", "valid", "test"}
    assert {d["emotion"] for d in dialogues if d["split"] == "train"} == set(schema.EMOTIONS)
