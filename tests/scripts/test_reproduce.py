"""scripts/reproduce.py: stages resume where they stopped, and the results table reads real files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import reproduce  # noqa: E402
import results_table  # noqa: E402


def stage(tmp_path: Path, script: str, name: str = "s") -> reproduce.Stage:
    out = tmp_path / f"{name}.out"
    command = [sys.executable, "-c", script.replace("OUT", str(out))]
    return reproduce.Stage(name, command, [out], resume_flag="--resume")


def test_finished_stage_is_skipped_and_unfinished_one_resumes(tmp_path: Path) -> None:
    state = reproduce.State(tmp_path / "state.json")
    # a command that fails the first time (writes its output but exits 1), as a killed run would
    marker = tmp_path / "tries"
    script = (
        "import sys, pathlib; m = pathlib.Path(%r); n = int(m.read_text()) if m.exists() else 0;"
        "m.write_text(str(n + 1)); pathlib.Path('OUT').write_text(' '.join(sys.argv[1:]));"
        "sys.exit(1 if n == 0 else 0)" % str(marker)
    )
    s = stage(tmp_path, script)
    with pytest.raises(SystemExit, match="stage s failed"):
        reproduce.run_stage(s, state, tmp_path, env={})
    assert not reproduce.State(tmp_path / "state.json").done(s)  # output exists, but not finished
    reproduce.run_stage(s, reproduce.State(tmp_path / "state.json"), tmp_path, env={})
    assert (tmp_path / "s.out").read_text() == "--resume"  # the rerun continued the started run
    assert marker.read_text() == "2"
    reproduce.run_stage(s, reproduce.State(tmp_path / "state.json"), tmp_path, env={})
    assert marker.read_text() == "2"  # done: skipped
    (tmp_path / "s.out").unlink()
    reproduce.run_stage(s, reproduce.State(tmp_path / "state.json"), tmp_path, env={})
    assert marker.read_text() == "3"  # output gone: rerun


def test_steps_flag_is_checked() -> None:
    assert reproduce.parse_steps(["wo-ece=8000"]) == {"wo-ece": 8000}
    with pytest.raises(SystemExit, match="PRESET=N"):
        reproduce.parse_steps(["kemp=lots"])


def test_results_table_reads_metrics_and_labels_reduced_rows(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "kemp"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": {"max_steps": 500, "batch_size": 16}}))
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 500}\n')
    metrics = {"examples": 5257, "emotion_accuracy": 0.3512, "perplexity": 38.25,
               "distinct_1": 0.71, "distinct_2": 3.02, "bleu_4": 2.1, "top_response_share": 0.04}
    (run / "eval" / "test-greedy.metrics.json").write_text(json.dumps(metrics))
    state = SimpleNamespace(data={"train-kemp": {"status": "done", "wall_seconds": 5400, "machine": "cpu",
                                                 "command": "kemp-model train", "log": "l"}})
    args = SimpleNamespace(work=tmp_path, presets=["kemp"], decodes=["greedy"])
    out = tmp_path / "docs" / "RESULTS.md"
    results_table.write_results(args, state, {"kemp": 500}, out)
    text = out.read_text()
    assert "| KEMP (ours) [reduced schedule] | greedy | 5257 | 35.12 | 38.25 | 0.71 | 3.02 |" in text
    assert "500 / 500 | 1.5 h | cpu |" in text
    assert "KEMP, paper (cited)" in text


def test_an_interrupted_training_run_is_labelled_unfinished(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "kemp"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": {"max_steps": 26000, "batch_size": 16}}))
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 9000}\n')
    (run / "eval" / "test-greedy.metrics.json").write_text(json.dumps({"examples": 5257}))
    state = SimpleNamespace(data={"train-kemp": {"status": "started", "wall_seconds_before": 3600}})
    args = SimpleNamespace(work=tmp_path, presets=["kemp"], decodes=["greedy"])
    out = tmp_path / "RESULTS.md"
    results_table.write_results(args, state, {}, out)
    assert "| KEMP (ours) [unfinished run] | greedy | 5257 |" in out.read_text()
    assert "9000 / 26000 | 60 min |" in out.read_text()
