"""scripts/run_records.py: a finished run is kept without its weights and stands in for itself
in a later session's WORK, only when it matches what would be trained now."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import repo_paths  # noqa: E402
import reproduce  # noqa: E402
import results_table  # noqa: E402
import run_records  # noqa: E402
from test_reproduce import _fake_run, _graph_file, _provenance, _train_args  # noqa: E402

from kemp_model import checkpoint as ckpt  # noqa: E402
from kemp_model.score import PredictionsError, read_predictions  # noqa: E402

METRICS = {
    "emotion_accuracy": 0.41,
    "perplexity_per_example": 36.5,
    "perplexity_pooled": 44.0,
    "distinct_1": 0.9,
    "distinct_2": 3.1,
}
PREDICTIONS = (
    "Emotion:sad\nContext:['my dog died .', 'oh no .', 'yes , yesterday .']\n"
    "Concept:[]\nPred:i am so sorry .\nRef:that is awful .\n"
)


def _finished_kemp(work: Path, provenance: dict, step: int = 26000, bad_evals: int = 0) -> Path:
    """WORK/runs/kemp: the kemp preset trained to STEP, its training state, a greedy test
    evaluation with predictions, and a validation log."""
    import torch

    _fake_run(work, "kemp", "kemp", METRICS, provenance=provenance)
    run = work / "runs" / "kemp"
    layer = torch.nn.Linear(2, 2)
    ckpt.save_training_state(
        run / ckpt.STATE_FILE,
        layer,
        torch.optim.Adam(layer.parameters()),
        [torch.get_rng_state()],
        {"step": step, "best_step": 14000, "bad_evals": bad_evals, "elapsed_s": 5400.0},
    )
    ckpt.save_weights(run / ckpt.LAST_FILE, layer, {"step": str(step)})
    ckpt.save_weights(run / ckpt.BEST_FILE, layer, {"step": "14000"})
    lines = [{"kind": "train", "step": s, "generation_nll": 3.0} for s in (10, 20)]
    lines.append({"kind": "valid", "step": 2000, "ppl_per_example": 60.0, "ppl_pooled": 70.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "eval" / "test-greedy.predictions.txt").write_text(PREDICTIONS)
    metrics = run / "eval" / "test-greedy.metrics.json"
    metrics.write_text(metrics.read_text())  # evaluated after the last checkpoint
    return run


def _state(work: Path) -> reproduce.State:
    state = reproduce.State(work / "state.json")
    command = f"{run_records.REPO}/.venv/bin/kemp-model train --out {work}/runs/kemp"
    state.record(
        reproduce.Stage("train-kemp", [], []),
        status="done",
        command=command,
        machine="x86_64 CPU x2",
        wall_seconds=5400.0,
        log=str(work / "logs" / "train-kemp.log"),
    )
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "logs" / "train-kemp.log").write_text(f"trained {run_records.REPO / 'runs' / 'kemp'}\n")
    return state


def _args(work: Path, records: Path | None, **changes: object) -> SimpleNamespace:
    return _train_args(work, records=records, compare=[], **changes)


def _stages(args: SimpleNamespace, steps: dict[str, int] | None = None) -> dict:
    return {s.name: s for s in reproduce.build_stages(args, steps or {})}


def _recorded(tmp_path: Path) -> tuple[Path, Path, Path, dict, Path, reproduce.State]:
    """A finished kemp run in WORK "first", recorded into "records"; "later" is a fresh WORK
    with the same knowledge. Returns (first, later, records, provenance, run, first's state)."""
    first, later, records = tmp_path / "first", tmp_path / "later", tmp_path / "records"
    provenance = _provenance("sense", rules="sense")
    _graph_file(first / "ed.arrow", provenance)
    run = _finished_kemp(first, provenance)
    state = _state(first)
    _stages(_args(first, records))["record-kemp"].execute(state)
    _graph_file(later / "ed.arrow", provenance)
    return first, later, records, provenance, run, state


def test_a_finished_run_is_recorded_and_stands_in_for_it_in_a_fresh_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, later, records, provenance, run, state = _recorded(tmp_path)
    record = records / "kemp"
    assert sorted(str(p.relative_to(record)) for p in record.rglob("*") if p.is_file()) == [
        "config.json",
        "eval/test-greedy.metrics.json",
        "eval/test-greedy.predictions.txt.gz",
        "logs/train-kemp.log",
        "metrics.jsonl.gz",
        "record.json",
    ]
    assert (record / "logs" / "train-kemp.log").read_text() == "trained runs/kemp\n"
    kept = run_records.read_record(record)
    assert kept["counters"]["step"] == 26000 and kept["counters"]["best_step"] == 14000
    assert kept["weights"]["file"] == "best.safetensors" and len(kept["weights"]["sha256"]) == 64
    assert kept["train"]["command"].startswith(".venv/bin/kemp-model train")  # no machine path
    assert kept["train"]["log"] == str(first / "logs" / "train-kemp.log")
    assert ckpt.read_metrics(record) == ckpt.read_metrics(run)
    assert read_predictions(record / "eval" / "test-greedy.predictions.txt.gz")[0].pred == (
        "i am so sorry ."
    )
    assert "[done] record-kemp: wrote" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in record.rglob("*")}
    _stages(_args(first, records))["record-kemp"].execute(state)
    assert "up to date" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in record.rglob("*")} == before  # nothing rewritten

    # a later session: a fresh WORK with the same knowledge, no runs/
    stages = _stages(_args(later, records))
    later_state = reproduce.State(later / "state.json")
    for name in ("train-kemp", "evaluate-kemp-greedy"):
        reproduce.run_stage(stages[name], later_state, later, env={})
        assert name not in reproduce.State(later / "state.json").data  # nothing ran
    out = capsys.readouterr().out
    assert "[rec ] train-kemp: finished run recorded in" in out
    assert "26,000 steps, x86_64 CPU x2" in out and "[rec ] evaluate-kemp-greedy" in out
    stages["record-kemp"].execute(later_state)  # the record is its own: left alone
    assert {p: p.stat().st_mtime_ns for p in record.rglob("*")} == before

    results = later / "RESULTS.md"
    (later / "results").mkdir()
    (later / "results" / "curves-gone.png").write_bytes(b"a run no longer shown")
    results_table.write_results(_args(later, records), later_state, results)
    assert not (later / "results" / "curves-gone.png").exists()
    text = results.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| KEMP (ours)"))
    assert "| greedy | 5257 | 41.00 | 36.50 | 44.00 |" in row and "[unfinished run]" not in row
    assert "| 26,000 / 26,000 | no | 1.5 h | x86_64 CPU x2 |" in row
    assert "**KEMP (ours)**: i am so sorry ." in text  # case study from the gzipped predictions
    assert f"log `{record}/logs/train-kemp.log`" in text  # the record's own copy of the log
    assert (later / "results" / "curves-kemp.png").is_file()
    assert "no test figures yet" not in text


def test_a_record_stands_in_only_for_the_run_that_would_be_trained_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, later, records, provenance, _, _ = _recorded(tmp_path)

    def used(args: SimpleNamespace, steps: dict[str, int] | None = None) -> str | None:
        capsys.readouterr()
        return _stages(args, steps)["train-kemp"].recorded()

    assert used(_args(later, records)) is not None
    assert used(_args(later, records), {"kemp": 20}) is None  # another schedule
    assert "26,000 of 26,000 steps recorded, 20 asked" in capsys.readouterr().out
    assert used(_args(later, records, decodes=["greedy", "diverse"])) is None
    assert "no diverse evaluation" in capsys.readouterr().out
    assert used(_args(later, None)) is None  # --no-records
    assert used(_args(later, records, limit=8)) is None  # smoke runs ignore records
    _graph_file(later / "ed.arrow", _provenance("paper", rules="sense"))  # other knowledge
    assert used(_args(later, records)) is None
    assert "other knowledge (retrieval preset 'sense' -> 'paper')" in capsys.readouterr().out
    _graph_file(later / "ed.arrow", provenance)
    config = json.loads((records / "kemp" / "config.json").read_text())
    config["model"]["dropout"] = 0.3  # the preset changed in the code since
    (records / "kemp" / "config.json").write_text(json.dumps(config))
    assert used(_args(later, records)) is None
    assert "model.dropout 0.3 -> " in capsys.readouterr().out
    # a run WORK holds goes its own way, the record aside
    (records / "kemp" / "config.json").write_text(json.dumps({**config, "model": {}}))
    _finished_kemp(later, provenance)
    assert used(_args(later, records)) is None


def test_unfinished_or_smoke_runs_are_not_recorded(tmp_path: Path) -> None:
    records = tmp_path / "records"
    provenance = _provenance("sense", rules="sense")
    _graph_file(tmp_path / "ed.arrow", provenance)
    _finished_kemp(tmp_path, provenance, step=4000)  # mid-schedule
    _stages(_args(tmp_path, records))["record-kemp"].execute(_state(tmp_path))
    assert not (records / "kemp").exists()
    _finished_kemp(tmp_path / "early", provenance, step=19000, bad_evals=3)  # stopped early
    _stages(_args(tmp_path / "early", records))["record-kemp"].execute(_state(tmp_path))
    assert run_records.read_record(records / "kemp")["counters"]["step"] == 19000
    smoke = _stages(_args(tmp_path / "early", tmp_path / "other", limit=8))["record-kemp"]
    smoke.execute(_state(tmp_path))
    assert not (tmp_path / "other").exists()


def test_gzipped_logs_and_predictions_read_like_plain_ones(tmp_path: Path) -> None:
    plain = tmp_path / "p.jsonl"
    plain.write_text('{"step": 1}\n{"step": 2}\n{"cut')
    packed = tmp_path / "p.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert ckpt.read_jsonl(packed) == ckpt.read_jsonl(plain) == [{"step": 1}, {"step": 2}]
    predictions = tmp_path / "x.predictions.txt.gz"
    predictions.write_bytes(gzip.compress(PREDICTIONS.encode()))
    assert read_predictions(predictions)[0].ref == "that is awful ."
    predictions.write_bytes(gzip.compress(PREDICTIONS.encode())[:20])
    with pytest.raises(PredictionsError, match="damaged gzip file"):
        read_predictions(predictions)


def test_committed_text_names_the_repository_and_shared_data_relatively_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout in /tmp must not turn every /tmp path into ../ (the parent is no name)."""
    monkeypatch.setattr(repo_paths, "REPO", tmp_path / "repo")
    monkeypatch.setattr(repo_paths, "SHARED", tmp_path / "shared")
    text = f"{tmp_path}/repo/logs/a.log {tmp_path}/shared/data/ed {tmp_path}/other/b"
    assert repo_paths.repo_relative(text) == f"logs/a.log ../shared/data/ed {tmp_path}/other/b"
