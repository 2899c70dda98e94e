"""End to end on real data: the ED validation split, enriched with WordNet + NRC-VAD, trains a
model whose validation loss falls, and evaluate / generate / chat work on its checkpoint.

Small on purpose (a few hundred steps of the `tiny` preset on one real split) so it runs in CI;
the full-size run is `just reproduce` (docs/RESULTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kemp_kg import schema
from kemp_kg.enrich import enrich
from kemp_kg.index import build_index
from kemp_kg.presets import paper
from kemp_model.train import TrainJob, read_metrics, train

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def real_run(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, nltk_data: Path, nrc_vad: Path
) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("real")
    index = work / "index"
    build_index("wordnet", nrc_vad, index)
    # The valid split as the training data (its own vocabulary): real text, real graphs.
    graphs = enrich(
        shared_data / "ed" / "valid.csv", index, work / "valid.arrow", config=paper(), split="train"
    ).path
    overrides = {
        "max_steps": 300,
        "eval_every": 100,
        "eval_examples": 512,
        "log_every": 20,
        "valid_split": "train",
        "patience": 0,
    }
    train(
        TrainJob(
            graphs=(graphs,),
            out=work / "run",
            preset="tiny",
            train_overrides=tuple(overrides.items()),
            progress=False,
        )
    )
    return index, graphs, work / "run"


def test_training_on_the_real_validation_split_lowers_the_validation_loss(real_run) -> None:
    _, graphs, run = real_run
    assert len(schema.open_graphs(graphs)) == 5_736
    valid = [r for r in read_metrics(run) if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [100, 200, 300]
    assert valid[-1]["ppl_per_example"] < valid[0]["ppl_per_example"] * 0.9, valid


def test_evaluate_generate_and_chat_work_on_its_checkpoint(real_run, tmp_path: Path) -> None:
    index, graphs, run = real_run
    done = subprocess.run(
        [str(BIN / "kemp-model"), "evaluate", str(run), "--split", "train", "--limit", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((run / "eval" / "train-greedy.metrics.json").read_text())
    assert metrics["examples"] == 64 and 0 < metrics["perplexity_per_example"] < 1e4
    blocks = (run / "eval" / "train-greedy.predictions.txt").read_text().count("Pred:")
    assert blocks == 64
    out = tmp_path / "preds.jsonl"
    done = subprocess.run(
        [
            str(BIN / "kemp-model"),
            "generate",
            str(run),
            "--split",
            "train",
            "--limit",
            "4",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 4
    done = subprocess.run(
        [str(BIN / "kemp-model"), "chat", str(run), "--index", str(index)],
        input="I failed my driving test today and I feel terrible.\n/quit\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
