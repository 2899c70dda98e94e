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
    results_table.write_results(args, state, out)
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
    results_table.write_results(args, state, out)
    assert "| KEMP (ours) [unfinished run] | greedy | 5257 |" in out.read_text()
    assert "9000 / 26000 | 60 min |" in out.read_text()


def test_a_stale_finished_stage_is_redone_from_scratch(tmp_path: Path) -> None:
    """A run whose configuration no longer matches the code is retrained with --force, not skipped."""
    script = "import sys, pathlib; pathlib.Path('OUT').write_text(' '.join(sys.argv[1:]))"
    base = stage(tmp_path, script)
    state = reproduce.State(tmp_path / "state.json")
    reproduce.run_stage(base, state, tmp_path, env={})
    assert (tmp_path / "s.out").read_text() == ""
    stale = reproduce.Stage(base.name, base.command, base.outputs, "--resume",
                            stale=lambda: "loss changed", force_flag="--force")
    reproduce.run_stage(stale, reproduce.State(tmp_path / "state.json"), tmp_path, env={})
    assert (tmp_path / "s.out").read_text() == "--force"
    assert reproduce.State(tmp_path / "state.json").done(stale)


def test_stale_run_names_the_fields_that_changed(tmp_path: Path) -> None:
    from kemp_model.config import LEGACY_LOSS_FIELDS, get_preset, to_dict

    def write(preset: str, **model_changes: object) -> Path:
        """A run folder as written before LossConfig: the loss settings inside "model"."""
        run = tmp_path / preset
        run.mkdir()
        p = get_preset(preset)
        loss = to_dict(p.loss)
        legacy = {**{k: loss[v] for k, v in LEGACY_LOSS_FIELDS.items()}, **model_changes}
        config = {"model": {**to_dict(p.model), **legacy}, "train": to_dict(p.train)}
        (run / "config.json").write_text(json.dumps(config))
        return run

    assert reproduce.stale_run(tmp_path / "none", "kemp") is None  # nothing trained yet
    kemp = write("kemp", emotion_loss_reduction="sum")  # a run folder from before LossConfig
    why = reproduce.stale_run(kemp, "kemp")
    assert why is not None and "loss.reduction 'sum' -> 'official'" in why
    # a changed --steps cap is not staleness: --resume continues the run under the new cap
    config = json.loads((kemp / "config.json").read_text())
    config["train"]["max_steps"] = 500
    (kemp / "config.json").write_text(json.dumps(config))
    assert "max_steps" not in reproduce.stale_run(kemp, "kemp")
    # the baseline has no emotion term: how it would be reduced cannot change a gradient
    assert reproduce.stale_run(write("transformer", emotion_loss_reduction="sum"), "transformer") is None
    assert reproduce.stale_run(write("wo-edd"), "wo-edd") is None


def _fake_run(work: Path, name: str, preset: str, metrics: dict, loss: dict | None = None,
              **model_changes: object) -> None:  # fmt: skip
    from kemp_model.config import get_preset, to_dict

    run = work / "runs" / name
    (run / "eval").mkdir(parents=True)
    p = get_preset(preset)
    config = {"preset": preset, "model": {**to_dict(p.model), **model_changes}, "train": to_dict(p.train),
              "loss": {**to_dict(p.loss), **(loss or {})},
              "embeddings": {"path": "glove.6B.50d.npy", "dim": 50}}
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 26000}\n')
    (run / "eval" / "test-greedy.metrics.json").write_text(json.dumps({"examples": 5257, **metrics}))


def test_ranking_and_variants_are_read_from_the_runs(tmp_path: Path) -> None:
    _fake_run(tmp_path, "kemp", "kemp", {"emotion_accuracy": 0.36, "perplexity": 48.0})
    _fake_run(tmp_path, "wo-ece", "wo-ece", {"emotion_accuracy": 0.35, "perplexity": 47.0})
    _fake_run(tmp_path, "kemp-old", "kemp", {"emotion_accuracy": 0.40, "perplexity": 68.0},
              loss={"reduction": "sum"})
    args = SimpleNamespace(work=tmp_path, presets=["kemp", "wo-ece"], decodes=["greedy"])
    out = tmp_path / "RESULTS.md"
    results_table.write_results(args, SimpleNamespace(data={}), out)
    text = out.read_text()
    assert "| emotion accuracy | KEMP 36.00 > w/o ECE 35.00 | yes |" in text
    assert "| perplexity | w/o ECE 47.00 > KEMP 48.00 | no |" in text
    assert "| kemp with reduction=sum (`kemp-old`) | greedy | 5257 | 40.00 | 68.00 |" in text
    # the gap to the paper's 36.89, computed from the runs
    assert "KEMP +30%, w/o ECE +27%" in text and "within 2.1% of each other" in text


def test_variants_train_with_their_setting_and_are_stale_without_it(tmp_path: Path) -> None:
    args = SimpleNamespace(work=tmp_path, data=tmp_path, presets=["kemp"], variants=["kemp-batchsum"],
                           decodes=["greedy"], device="cpu", threads=1, limit=0)
    stages = {s.name: s for s in reproduce.build_stages(args, {})}
    assert {"train-kemp", "train-kemp-batchsum", "evaluate-kemp-batchsum-greedy"} <= stages.keys()
    command = stages["train-kemp-batchsum"].command
    assert command[command.index("--loss-reduction") + 1] == "sum"
    assert "--loss-reduction" not in stages["train-kemp"].command
    _fake_run(tmp_path, "kemp-batchsum", "kemp", {}, loss={"reduction": "sum"})
    assert stages["train-kemp-batchsum"].stale() is None
    # the same folder read as the plain preset is stale: its loss is not the preset's
    why = reproduce.stale_run(tmp_path / "runs" / "kemp-batchsum", "kemp")
    assert why is not None and "loss.reduction 'sum' -> 'official'" in why


def test_a_variant_without_pretrained_vectors_leaves_them_out(tmp_path: Path) -> None:
    args = SimpleNamespace(work=tmp_path, data=tmp_path, presets=[], variants=["kemp-noglove"],
                           decodes=["greedy"], device="cpu", threads=0, limit=0)
    stage = next(s for s in reproduce.build_stages(args, {}) if s.name == "train-kemp-noglove")
    assert "--embeddings" not in stage.command
    _fake_run(tmp_path, "kemp-noglove", "kemp", {})
    config_file = tmp_path / "runs" / "kemp-noglove" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "embeddings": {"path": "glove.6B.50d.npy", "dim": 50}}))
    assert "pre-trained vectors -> none" in stage.stale()
    config_file.write_text(json.dumps({**config, "embeddings": None}))
    assert stage.stale() is None


def test_an_interrupted_stage_keeps_its_time_and_resumes(tmp_path: Path) -> None:
    """SIGTERM to reproduce.py mid-stage: the stage stays 'started' with its wall time kept."""
    import subprocess
    import time

    work = tmp_path / "work"
    script = (
        "import json, pathlib, sys; sys.path.insert(0, %r); import reproduce;"
        "import signal; signal.signal(signal.SIGTERM, reproduce._interrupt);"
        "w = pathlib.Path(%r); w.mkdir(exist_ok=True);"
        "s = reproduce.Stage('slow', [sys.executable, '-c', 'import time; time.sleep(60)'], [w / 'x'], '--resume');"
        "reproduce.run_stage(s, reproduce.State(w / 'state.json'), w, env={})"
    ) % (str(SCRIPTS), str(work))
    proc = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(100):
        if (work / "state.json").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)
    proc.terminate()
    assert proc.wait(timeout=30) != 0
    record = json.loads((work / "state.json").read_text())["slow"]
    assert record["status"] == "started" and record["wall_seconds_before"] >= 1.0
