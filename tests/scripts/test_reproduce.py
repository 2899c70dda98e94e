"""scripts/reproduce.py: stages resume where they stopped; the results table reads real files."""

from __future__ import annotations

import json
import shutil
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
        f"import sys, pathlib; m = pathlib.Path({str(marker)!r});"
        "n = int(m.read_text()) if m.exists() else 0;"
        "m.write_text(str(n + 1)); pathlib.Path('OUT').write_text(' '.join(sys.argv[1:]));"
        "sys.exit(1 if n == 0 else 0)"
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
    # a variant's own cap, and the CPU presets
    assert reproduce.parse_steps(["kemp-random=50", "kemp-small=9"]) == {
        "kemp-random": 50,
        "kemp-small": 9,
    }
    for bad in ("kemp=lots", "kemp=0", "nope=5"):
        with pytest.raises(SystemExit, match="NAME=N"):
            reproduce.parse_steps([bad])


def test_results_table_reads_metrics_and_labels_reduced_rows(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "kemp"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"preset": "kemp", "train": {"max_steps": 500, "batch_size": 16}})
    )
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 500}\n')
    metrics = {
        "examples": 5257,
        "emotion_accuracy": 0.3512,
        "perplexity_per_example": 38.25,
        "perplexity_pooled": 44.5,
        "distinct_1": 0.71,
        "distinct_2": 3.02,
        "bleu_1": 15.5,
        "bleu_4": 2.1,
        "top_response_share": 0.04,
    }
    (run / "eval" / "test-greedy.metrics.json").write_text(json.dumps(metrics))
    state = SimpleNamespace(
        data={
            "train-kemp": {
                "status": "done",
                "wall_seconds": 5400,
                "machine": "cpu",
                "command": "kemp-model train",
                "log": "l",
            }
        }
    )
    args = SimpleNamespace(work=tmp_path, presets=["kemp"], decodes=["greedy"])
    out = tmp_path / "docs" / "RESULTS.md"
    results_table.write_results(args, state, out)
    text = out.read_text()
    # both perplexities, paper formula first; BLEU-1 and -4
    assert (
        "| KEMP (ours) [reduced schedule] | greedy | 5257 | 35.12 | 38.25 | 44.50 | 0.71 | 3.02 "
        "| 15.50 | 2.10 | 4.0 |"
    ) in text
    assert "| 500 / 500 (paper: 26,000) | no | 1.5 h | cpu |" in text
    assert "KEMP, paper (cited)" in text
    # the paper is compared with the paper formula only
    assert "| perplexity (paper formula) | 36.89 | 35.37 | 38.25 | +3.7% | no (<= 36.9) |" in text
    assert "vocabulary and tokenisation" not in text.split("## Where")[0]


def test_old_run_folders_render_their_perplexity_as_pooled(tmp_path: Path) -> None:
    """A run folder from before LossConfig and before both perplexities: still a row."""
    from kemp_model.config import LEGACY_LOSS_FIELDS, get_preset, to_dict

    run = tmp_path / "runs" / "kemp"
    (run / "eval").mkdir(parents=True)
    small = get_preset("kemp-small")
    loss = to_dict(small.loss)
    legacy = {k: loss[v] for k, v in LEGACY_LOSS_FIELDS.items()}
    config = {
        "preset": "kemp",
        "model": {**to_dict(small.model), **legacy},
        "train": to_dict(small.train),
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.jsonl").write_text('{"kind": "valid", "step": 26000, "ppl": 50.1}\n')
    (run / "eval" / "test-greedy.metrics.json").write_text(
        json.dumps(
            {"examples": 5257, "emotion_accuracy": 0.3839, "perplexity": 49.76, "distinct_1": 0.91}
        )
    )
    state = SimpleNamespace(data={"train-kemp": {"status": "done", "wall_seconds": 5760}})
    args = SimpleNamespace(work=tmp_path, presets=["kemp"], decodes=["greedy"])
    out = tmp_path / "RESULTS.md"
    results_table.write_results(args, state, out)
    text = out.read_text()
    assert "| KEMP (ours) | greedy | 5257 | 38.39 | n/a | 49.76 | 0.91 |" in text
    assert "| 26,000 / 26,000 | no | 1.6 h |" in text
    assert "predates the paper-formula perplexity" in text


def test_an_interrupted_training_run_is_labelled_unfinished(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "kemp"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"preset": "kemp", "train": {"max_steps": 26000, "batch_size": 16}})
    )
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 9000}\n')
    (run / "eval" / "test-greedy.metrics.json").write_text(json.dumps({"examples": 5257}))
    state = SimpleNamespace(data={"train-kemp": {"status": "started", "wall_seconds_before": 3600}})
    args = SimpleNamespace(work=tmp_path, presets=["kemp"], decodes=["greedy"])
    out = tmp_path / "RESULTS.md"
    results_table.write_results(args, state, out)
    assert "| KEMP (ours) [unfinished run] | greedy | 5257 |" in out.read_text()
    assert "| 9,000 / 26,000 | no | 60 min |" in out.read_text()


def test_a_stale_finished_stage_is_redone_from_scratch(tmp_path: Path) -> None:
    """A run whose configuration no longer matches the code is retrained with --force."""
    script = "import sys, pathlib; pathlib.Path('OUT').write_text(' '.join(sys.argv[1:]))"
    base = stage(tmp_path, script)
    state = reproduce.State(tmp_path / "state.json")
    reproduce.run_stage(base, state, tmp_path, env={})
    assert (tmp_path / "s.out").read_text() == ""
    stale = reproduce.Stage(
        base.name,
        base.command,
        base.outputs,
        "--resume",
        stale=lambda: "loss changed",
        force_flag="--force",
    )
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
        config = {
            "model": {**to_dict(p.model), **legacy},
            "train": to_dict(p.train),
            "embeddings": GLOVE,
        }
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
    assert (
        reproduce.stale_run(write("transformer", emotion_loss_reduction="sum"), "transformer")
        is None
    )
    assert reproduce.stale_run(write("wo-edd"), "wo-edd") is None


#: config.json's record of GloVe 50d placed in a 300-wide table (the presets' default).
GLOVE = {"path": "glove.6B.50d.npy", "dim": 50, "table_dim": 300, "placement": "orthonormal"}


def _fake_run(
    work: Path,
    name: str,
    preset: str,
    metrics: dict,
    loss: dict | None = None,
    provenance: dict | None = None,
    embeddings: dict | None = GLOVE,
    **model_changes: object,
) -> None:
    """A finished run folder, trained with GloVe 50d as every preset is (``embeddings=None``:
    without pre-trained vectors, as the ``-random`` variants)."""
    from kemp_model.config import get_preset, to_dict

    run = work / "runs" / name
    (run / "eval").mkdir(parents=True)
    p = get_preset(preset)
    config = {
        "preset": preset,
        "model": {**to_dict(p.model), **model_changes},
        "train": to_dict(p.train),
        "loss": {**to_dict(p.loss), **(loss or {})},
        "embeddings": embeddings,
        "provenance": provenance or {},
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 26000}\n')
    (run / "eval" / "test-greedy.metrics.json").write_text(
        json.dumps({"examples": 5257, **metrics})
    )


def test_ranking_and_variants_are_read_from_the_runs(tmp_path: Path) -> None:
    _fake_run(tmp_path, "kemp", "kemp", {"emotion_accuracy": 0.36, "perplexity_per_example": 48.0})
    _fake_run(
        tmp_path, "wo-ece", "wo-ece", {"emotion_accuracy": 0.35, "perplexity_per_example": 47.0}
    )
    _fake_run(
        tmp_path,
        "kemp-old",
        "kemp",
        {"emotion_accuracy": 0.40, "perplexity_per_example": 68.0},
        loss={"reduction": "sum"},
    )
    args = SimpleNamespace(work=tmp_path, presets=["kemp", "wo-ece"], decodes=["greedy"])
    out = tmp_path / "RESULTS.md"
    results_table.write_results(args, SimpleNamespace(data={}), out)
    text = out.read_text()
    assert "| emotion accuracy % | KEMP 36.00 > w/o ECE 35.00 | yes |" in text
    assert "| perplexity (paper formula) | w/o ECE 47.00 > KEMP 48.00 | no |" in text
    assert "| kemp with reduction=sum (`kemp-old`) | greedy | 5257 | 40.00 | 68.00 | n/a |" in text
    # the gap to the paper's 36.89, computed from the runs; no cause named without an A/B
    assert "KEMP +30.1%, w/o ECE +27.4%" in text and "within 2.1% of each other" in text
    assert "No variant has a validation" in text
    # same knowledge for both presets: one pair in the knowledge ablation
    assert "| this one | 36.00 / 48.00 | 35.00 / 47.00 | +1.00 | +1.00 |" in text


def test_variants_train_with_their_setting_and_are_stale_without_it(tmp_path: Path) -> None:
    args = SimpleNamespace(
        work=tmp_path,
        data=tmp_path,
        presets=["kemp"],
        variants=["kemp-batchsum"],
        decodes=["greedy"],
        device="cpu",
        threads=1,
        limit=0,
    )
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


def test_every_preset_trains_with_vectors_and_the_random_variants_without(
    tmp_path: Path,
) -> None:
    args = _train_args(
        tmp_path, presets=["kemp", "kemp-small"], variants=["kemp-random", "kemp-prefix"]
    )
    stages = {s.name: s for s in reproduce.build_stages(args, {})}
    glove, prefix = stages["train-kemp"].command, stages["train-kemp-prefix"].command
    assert "--embeddings" in glove and "--embedding-placement" not in glove  # orthonormal
    assert "--embeddings" in stages["train-kemp-small"].command  # its 50-wide table: GloVe's
    assert "--embeddings" not in stages["train-kemp-random"].command
    assert prefix[prefix.index("--embedding-placement") + 1] == "prefix"
    vectors = {"path": "glove.6B.50d.npy", "dim": 50, "table_dim": 300}
    _fake_run(tmp_path, "kemp", "kemp", {}, embeddings=None)  # the preset's old default
    assert "no pre-trained vectors -> GloVe 50d" in stages["train-kemp"].stale()
    _fake_run(tmp_path, "kemp-random", "kemp", {}, embeddings=None)
    assert stages["train-kemp-random"].stale() is None  # the same run is the -random variant
    config_file = tmp_path / "runs" / "kemp" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(
        json.dumps({**config, "embeddings": {**vectors, "placement": "orthonormal"}})
    )
    assert stages["train-kemp"].stale() is None
    assert "pre-trained vectors -> none" in reproduce.stale_run(
        config_file.parent, "kemp", {"embeddings": False}
    )
    # the default variants: every published preset without vectors
    assert reproduce.DEFAULT_VARIANTS == tuple(f"{p}-random" for p in reproduce.PRESETS)
    _fake_run(
        tmp_path, "kemp-prefix", "kemp", {}, embeddings={**vectors, "placement": "orthonormal"}
    )
    assert "placement 'orthonormal' -> 'prefix'" in stages["train-kemp-prefix"].stale()


def test_an_interrupted_stage_keeps_its_time_and_resumes(tmp_path: Path) -> None:
    """SIGTERM to reproduce.py mid-stage: the stage stays 'started' with its wall time kept."""
    import subprocess
    import time

    work = tmp_path / "work"
    script = (
        f"import json, pathlib, sys; sys.path.insert(0, {str(SCRIPTS)!r}); import reproduce;"
        "import signal; signal.signal(signal.SIGTERM, reproduce._interrupt);"
        f"w = pathlib.Path({str(work)!r}); w.mkdir(exist_ok=True);"
        "s = reproduce.Stage('slow', [sys.executable, '-c', 'import time; time.sleep(60)'],"
        "                    [w / 'x'], '--resume');"
        "reproduce.run_stage(s, reproduce.State(w / 'state.json'), w, env={})"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(600):  # a loaded machine can take seconds to start the interpreter
        if (work / "state.json").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)
    proc.terminate()
    assert proc.wait(timeout=30) != 0
    record = json.loads((work / "state.json").read_text())["slow"]
    assert record["status"] == "started" and record["wall_seconds_before"] >= 1.0


def _provenance(preset: str = "paper", source: str = "wordnet", rules: str | None = None) -> dict:
    options = {"wordnet": {"preset": rules}} if rules else None
    return {
        "index": {
            "format": "kemp-index/1",
            "source": {"kind": source, "xxh3_128": "ab" * 16},
            "lexicon": {"sha256": "cd" * 32},
            "options": options,
        },
        "thresholds": {"preset": preset, "top_k_per_token": 5},
    }


def _training_state(run: Path, max_steps: int, patience: int = 3, **counters: object) -> None:
    """A run folder with config.json, last.safetensors and a training state holding COUNTERS
    (a real safetensors state written by kemp_model.checkpoint, tensors from a toy module)."""
    import torch

    from kemp_model import checkpoint as ckpt

    run.mkdir(parents=True, exist_ok=True)
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    ckpt.save_training_state(
        run / ckpt.STATE_FILE,
        layer,
        optimizer,
        [torch.get_rng_state()],
        {"step": 0, "bad_evals": 0, "elapsed_s": 12.5, **counters},
    )
    ckpt.save_weights(run / ckpt.LAST_FILE, layer, {"step": str(counters.get("step", 0))})
    config = {
        "preset": "kemp",
        "train": {"max_steps": max_steps, "patience": patience, "batch_size": 16},
    }
    (run / "config.json").write_text(json.dumps(config))


def test_a_run_is_complete_at_its_schedule_or_early_stop_without_a_best_checkpoint(
    tmp_path: Path,
) -> None:
    """A run capped before step 13,000 never keeps best.safetensors: last + the state's step say
    it finished; a longer schedule asked for later makes it incomplete again."""
    from kemp_model.checkpoint import read_training_counters

    run = tmp_path / "run"
    assert not reproduce.train_complete(run, 20)  # nothing trained
    _training_state(run, 20, step=20)
    assert not (run / "best.safetensors").exists()
    assert read_training_counters(run)["step"] == 20
    assert reproduce.train_complete(run, 20)
    assert not reproduce.train_complete(run, 26000)  # the full schedule asked for afterwards
    _training_state(run, 26000, step=18000, bad_evals=3)  # patience spent: stopped early
    assert reproduce.train_complete(run, 26000)
    _training_state(run, 26000, patience=0, step=18000, bad_evals=3)
    assert not reproduce.train_complete(run, 26000)
    (run / "last.state.safetensors").write_bytes(b"torn")  # unreadable: not complete, no crash
    assert read_training_counters(run) is None and not reproduce.train_complete(run, 26000)


def _train_args(tmp_path: Path, **changes: object) -> SimpleNamespace:
    values = {
        "work": tmp_path,
        "data": tmp_path,
        "presets": ["kemp"],
        "variants": [],
        "decodes": ["greedy"],
        "device": "cpu",
        "threads": 1,
        "limit": 0,
        "valid_examples": 0,
    }
    return SimpleNamespace(**{**values, **changes})


def test_training_always_names_its_schedule_and_resumes_with_only_resumable_flags(
    tmp_path: Path,
) -> None:
    stages = {
        s.name: s
        for s in reproduce.build_stages(_train_args(tmp_path, valid_examples=200), {"kemp": 20})
    }
    train = stages["train-kemp"]
    assert train.command[train.command.index("--max-steps") + 1] == "20"
    evaluate = stages["evaluate-kemp-greedy"].command  # no more threads than asked beside training
    assert evaluate[evaluate.index("--threads") + 1] == "1"
    assert train.command[train.command.index("--eval-examples") + 1] == "200"
    assert train.resume_command is not None and "--resume" in train.resume_command
    assert "--embeddings" not in train.resume_command and "--preset" not in train.resume_command
    full = {s.name: s for s in reproduce.build_stages(_train_args(tmp_path), {})}["train-kemp"]
    assert full.command[full.command.index("--max-steps") + 1] == "26000"  # the preset's own
    # a variant's own cap beats its preset's
    args = _train_args(tmp_path, variants=["kemp-random"])
    stages = {s.name: s for s in reproduce.build_stages(args, {"kemp": 20, "kemp-random": 7})}
    random = stages["train-kemp-random"].command
    assert random[random.index("--max-steps") + 1] == "7"


def _echo_stage(tmp_path: Path, run: Path, max_steps: int) -> reproduce.Stage:
    """A training-like stage whose command records its arguments and writes the run's state."""
    here, calls = str(Path(__file__).parent), str(tmp_path / "calls")
    script = (
        f"import sys, json, pathlib; sys.path.insert(0, {here!r}); import test_reproduce as t;"
        f"pathlib.Path({calls!r}).open('a').write(' '.join(sys.argv[1:]) + '\\n');"
        f"t._training_state(pathlib.Path({str(run)!r}), {max_steps}, step={max_steps})"
    )
    command = [sys.executable, "-c", script, "fresh"]
    return reproduce.Stage(
        "train-x",
        command,
        [run / "last.safetensors"],
        "--resume",
        force_flag="--force",
        complete=lambda: reproduce.train_complete(run, max_steps),
        resume_when=lambda: (run / "last.state.safetensors").is_file(),
        resume_command=[sys.executable, "-c", script, "resumed"],
        leftover=lambda: (run / "config.json").is_file(),
    )


def test_a_finished_short_run_is_continued_to_a_longer_schedule(tmp_path: Path) -> None:
    run = tmp_path / "run"
    state = reproduce.State(tmp_path / "state.json")
    reproduce.run_stage(_echo_stage(tmp_path, run, 20), state, tmp_path, env={})
    reproduce.run_stage(_echo_stage(tmp_path, run, 20), state, tmp_path, env={})  # done: skipped
    assert (tmp_path / "calls").read_text().split() == ["fresh"]
    reproduce.run_stage(_echo_stage(tmp_path, run, 40), state, tmp_path, env={})
    assert (tmp_path / "calls").read_text().split() == ["fresh", "resumed"]
    record = reproduce.State(tmp_path / "state.json").data["train-x"]
    assert record["status"] == "done"


def test_a_start_that_left_no_checkpoint_starts_afresh_with_force(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # killed before its first checkpoint
    reproduce.run_stage(
        _echo_stage(tmp_path, run, 5), reproduce.State(tmp_path / "state.json"), tmp_path, env={}
    )
    assert (tmp_path / "calls").read_text().split() == ["fresh", "--force"]


def test_an_evaluation_is_redone_for_a_newer_checkpoint_or_another_command(tmp_path: Path) -> None:
    import os

    run = tmp_path / "runs" / "kemp"
    (run / "eval").mkdir(parents=True)
    metrics = run / "eval" / "test-greedy.metrics.json"
    metrics.write_text("{}")
    (run / "last.safetensors").write_bytes(b"w")
    os.utime(metrics, (1, 1))  # older than last: no best checkpoint, so last is what it read
    assert reproduce.evaluated_checkpoint(run) == run / "last.safetensors"
    assert "predates" in reproduce._older_than_checkpoint(run, "greedy")
    os.utime(run / "last.safetensors", (0, 0))
    assert reproduce._older_than_checkpoint(run, "greedy") is None
    (run / "best.safetensors").write_bytes(b"w")  # a best kept later is what evaluate reads now
    assert "best.safetensors" in reproduce._older_than_checkpoint(run, "greedy")
    # a smoke evaluation (--limit) is not taken for the full one
    limited = {s.name: s for s in reproduce.build_stages(_train_args(tmp_path, limit=30), {})}
    full = {s.name: s for s in reproduce.build_stages(_train_args(tmp_path), {})}
    recorded = {"status": "done", "command": " ".join(limited["evaluate-kemp-greedy"].command)}
    assert reproduce._command_changed(full["evaluate-kemp-greedy"], recorded) is not None
    assert reproduce._command_changed(limited["evaluate-kemp-greedy"], recorded) is None


def _graph_file(path: Path, provenance: dict) -> Path:
    """A graph file with two test rows (one <unk> among their 4 reference tokens)."""
    import pyarrow as pa

    from kemp_kg import schema

    vocab = (*schema.SPECIAL_TOKENS, "hello", "world")
    hello, world = len(schema.SPECIAL_TOKENS), len(schema.SPECIAL_TOKENS) + 1
    unk = vocab.index("<unk>")
    rows = [
        {
            "example_id": f"test-{n}",
            "conv_id": f"c{n}",
            "split": "test",
            "emotion": 0,
            "history": ["hello world"],
            "target": "x",
            "context_ids": [schema.CLS_ID, hello, world],
            "context_roles": [
                int(schema.Role.CLS),
                int(schema.Role.SPEAKER),
                int(schema.Role.SPEAKER),
            ],
            "context_intensity": [0.0, 0.5, 0.5],
            "concept_ids": [],
            "concept_anchor": [],
            "concept_relation": [],
            "concept_weight": [],
            "concept_intensity": [],
            "target_ids": target,
        }
        for n, target in enumerate([[hello, world], [hello, unk]])
    ]
    table = pa.Table.from_pylist(rows, schema=schema.GRAPH_SCHEMA)
    return schema.write_graphs(path, [table], vocab=vocab, provenance=provenance)


def test_a_run_on_other_knowledge_is_kept_and_refused(tmp_path: Path) -> None:
    graphs = _graph_file(tmp_path / "ed.arrow", _provenance("sense"))
    _fake_run(tmp_path, "kemp", "kemp", {}, provenance=_provenance("sense"))
    run = tmp_path / "runs" / "kemp"
    assert reproduce.knowledge_change(run, graphs) is None
    _graph_file(tmp_path / "ed.arrow", _provenance("paper"))
    assert "retrieval preset 'sense' -> 'paper'" in reproduce.knowledge_change(run, graphs)
    with pytest.raises(SystemExit, match="other knowledge.*another --work"):
        reproduce._train_stale(run, "kemp", {}, graphs)
    assert (run / "config.json").exists()


def test_knowledge_ablation_pairs_kemp_and_wo_ece_per_knowledge(tmp_path: Path) -> None:
    before, after = tmp_path / "old", tmp_path / "new"
    old, new = _provenance("paper", rules="conceptnet"), _provenance("sense", rules="sense")
    _fake_run(
        before,
        "kemp",
        "kemp",
        {"emotion_accuracy": 0.36, "perplexity_per_example": 48.0},
        provenance=old,
        embeddings=None,
    )
    _fake_run(
        before,
        "wo-ece",
        "wo-ece",
        {"emotion_accuracy": 0.37, "perplexity_per_example": 47.5},
        provenance=old,
        embeddings=None,
    )
    _fake_run(
        after,
        "kemp",
        "kemp",
        {"emotion_accuracy": 0.40, "perplexity_per_example": 40.0},
        provenance=new,
    )
    _fake_run(
        after,
        "wo-ece",
        "wo-ece",
        {"emotion_accuracy": 0.38, "perplexity_per_example": 41.0},
        provenance=new,
    )
    # the same knowledge without vectors: its own row, under the same knowledge number
    for name, preset, ppl in (("kemp-random", "kemp", 42.0), ("wo-ece-random", "wo-ece", 42.5)):
        _fake_run(
            after, name, preset, {"perplexity_per_example": ppl}, provenance=new, embeddings=None
        )
        with open(after / "runs" / name / "metrics.jsonl", "a") as handle:
            record = {"kind": "valid", "step": 2000, "ppl_per_example": ppl + 9}
            handle.write(json.dumps(record) + "\n")
    for work, kemp, ablated in ((before, 60.0, 59.0), (after, 50.0, 52.0)):
        for name, ppl in (("kemp", kemp), ("wo-ece", ablated)):
            with open(work / "runs" / name / "metrics.jsonl", "a") as handle:
                handle.write(
                    json.dumps({"kind": "valid", "step": 2000, "ppl_per_example": ppl}) + "\n"
                )
    # the newer knowledge trained longer: its later validation is not what the rows compare
    for name, ppl in (("kemp", 45.0), ("wo-ece", 44.0)):
        with open(after / "runs" / name / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps({"kind": "valid", "step": 4000, "ppl_per_example": ppl}) + "\n")
    args = SimpleNamespace(
        work=after, presets=["kemp", "wo-ece"], decodes=["greedy"], compare=[before]
    )
    out = tmp_path / "RESULTS.md"
    results_table.write_results(args, SimpleNamespace(data={}), out)
    text = out.read_text()
    with_glove = "`glove.6B.50d.npy` (50d placed in a 300-wide table, orthonormal)"
    assert (
        f"| K1 | {with_glove} | this one | 40.00 / 40.00 | 38.00 / 41.00 | +2.00 | -1.00 "
        "| 50.00 vs 52.00 at step 2,000 |" in text
    )
    assert (
        "| K1 | none (random word table) | this one | n/a / 42.00 | n/a / 42.50 | n/a | -0.50 "
        "| 51.00 vs 51.50 at step 2,000 |" in text
    )
    assert (
        f"| K2 | none (random word table) | `{before}` | 36.00 / 48.00 | 37.00 / 47.50 | -1.00 "
        "| +0.50 | 60.00 vs 59.00 at step 2,000 |" in text
    )
    assert text.count("- K1: ") == 1 and text.count("- K2 differs from K1 in") == 1
    assert "WordNet rules `sense`, retrieval preset `sense`" in text
    assert "WordNet rules `conceptnet`, retrieval preset `paper`" in text
    # a later session holds the earlier knowledge's runs only as committed records
    import run_records

    kept = tmp_path / "compare" / "knowledge-before"
    assert not run_records.holds_records(kept)
    for name in ("kemp", "wo-ece"):
        (before / "runs" / name / "eval" / "test-greedy.predictions.txt").write_text("")
        run_records.write_record(
            before / "runs" / name, kept / name, ["greedy"], {}, {"step": 2000}
        )
    assert run_records.holds_records(kept)
    lines = results_table._knowledge_ablation(after, [kept], SimpleNamespace(data={}), ["greedy"])
    assert any(
        line.startswith(
            f"| K2 | none (random word table) | `{kept}` | 36.00 / 48.00 | 37.00 / 47.50 | -1.00 "
        )
        for line in lines
    )
    # one pair alone: compared at KEMP's evaluated step, with accuracy when logged
    for name in ("kemp-random", "wo-ece-random"):
        shutil.rmtree(after / "runs" / name)
    for name, acc in (("kemp", 0.41), ("wo-ece", 0.39)):
        with open(after / "runs" / name / "metrics.jsonl", "a") as handle:
            record = {"kind": "valid", "step": 6000, "ppl_per_example": 43.0}
            handle.write(json.dumps({**record, "emotion_accuracy": acc}) + "\n")
    lines = results_table._knowledge_ablation(after, [], SimpleNamespace(data={}), ["greedy"])
    assert any("| 43.00 vs 43.00 (acc 41.00% vs 39.00%) at step 6,000 |" in x for x in lines)
    assert (
        "K2 differs from K1 in: index options wordnet {'preset': 'sense'} -> "
        "{'preset': 'conceptnet'}, retrieval preset 'sense' -> 'paper'"
    ) in text


def test_compare_names_a_work_folder_or_a_record_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for need in ("ed", "nrc_vad", "vectors", "kemp_reference"):
        (data / need).mkdir(parents=True)
    stray = tmp_path / "stray"
    stray.mkdir()
    argv = ["--data", str(data), "--work", str(tmp_path / "w"), "--compare", str(stray)]
    with pytest.raises(SystemExit, match="neither a reproduce --work folder.*nor a folder of run"):
        reproduce.main(argv)
    assert not (tmp_path / "w").exists()  # refused before anything was made


def test_vocabulary_figures_are_computed_from_the_graph_file(tmp_path: Path) -> None:
    graphs = _graph_file(tmp_path / "ed.arrow", _provenance())
    reference = tmp_path / "kemp_reference" / "KEMP_test_predictions.txt"
    reference.parent.mkdir()
    lines = []
    for ref in ("hello world", "hello stranger", "world"):  # the 2nd maps to "hello <unk>"
        lines += ["Emotion: sad", "Context: ['hi']", "Concept: []", "Pred: hi", f"Ref: {ref}"]
    reference.write_text("\n".join(lines) + "\n")
    figures = results_table._vocabulary_figures(graphs, tmp_path)
    assert figures["tokens"] == 4 and figures["unk"] == 0.25
    assert figures["scope"] == "train"  # no "scope" recorded: the train-split vocabulary
    assert figures["official"] == 3 and abs(figures["same"] - 2 / 3) < 1e-9


@pytest.mark.slow
def test_the_whole_pipeline_on_real_data_with_tiny_caps(
    tmp_path: Path, shared_data: Path, nltk_data: Path
) -> None:
    """`scripts/reproduce.py` end to end (index, enrich, score, train, evaluate, RESULTS) with
    caps of a few steps: every row labelled reduced, both perplexities, a rerun skips every stage,
    and a longer cap continues the same run with --resume (minutes on a CPU)."""
    import re
    import subprocess

    work, results = tmp_path / "work", tmp_path / "RESULTS.md"
    base = [
        sys.executable,
        str(SCRIPTS / "reproduce.py"),
        "--data",
        str(shared_data),
        "--work",
        str(work),
        "--results",
        str(results),
        "--threads",
        "1",
        "--limit",
        "8",
        "--valid-examples",
        "32",
        "--variants",
        "--presets",
        "kemp",
        "transformer",
    ]

    def reproduce_with(*steps: str) -> str:
        done = subprocess.run(
            [*base, "--steps", *steps], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    reproduce_with("kemp=3", "transformer=3")
    text = results.read_text()
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| KEMP (ours)") or line.startswith("| Transformer (ours)")
    ]
    assert len(rows) == 4 and all("[reduced schedule]" in row for row in rows)
    # test examples, accuracy (none for the Transformer), both perplexities
    assert all(re.search(r"\| 8 \| (n/a|[0-9.]+) \| [0-9.]+ \| [0-9.]+ \|", row) for row in rows)
    assert "| 3 / 3 (paper: 26,000), validated on 32 examples | no |" in text
    assert not (work / "runs" / "kemp" / "best.safetensors").exists()  # capped before 13,000
    again = reproduce_with("kemp=3", "transformer=3")
    assert "[run ]" not in again and again.count("[skip]") >= 9
    longer = reproduce_with("kemp=5", "transformer=3")
    assert "train-kemp: " in longer and "--resume --max-steps 5" in longer
    assert "[run ] evaluate-kemp-greedy" in longer and "[run ] train-transformer" not in longer
    assert "| 5 / 5 (paper: 26,000)" in results.read_text()


def test_the_gap_section_shows_the_benchmarks_short_ab_measurements(tmp_path: Path) -> None:
    (tmp_path / "presets_ab.json").write_text(
        json.dumps(
            {
                "command": "python bench/bench_presets_ab.py --steps 2000",
                "label": "reduced schedule: 2,000 of the paper's 26,000 steps",
                "table": "| arm | ppl |\n|---|---|\n| kemp | 80.91 |",
            }
        )
    )
    valid = {
        "step": 1500,
        "ppl_per_example": 103.6,
        "ppl_pooled": 120.44,
        "emotion_accuracy": 0.151,
    }
    (tmp_path / "knowledge_ab.json").write_text(
        json.dumps(
            {
                "commands": ["python bench/knowledge_ab.py --steps 1500"],
                "schedule": "REDUCED: 1500 steps",
                "runs": {"kemp/after": {"last_validation": valid}},
            }
        )
    )
    text = "\n".join(results_table._bench_ab(tmp_path))
    assert "(`bench/results/presets_ab.json`, reduced schedule: 2,000 of the paper's" in text
    assert "`python bench/bench_presets_ab.py --steps 2000`" in text and "| kemp | 80.91 |" in text
    assert "| kemp/after | 103.60 | 120.44 | 15.1 | 1,500 |" in text
    assert "placement_ab" not in text  # absent files are skipped
    assert results_table._bench_ab(tmp_path / "none") == []


def test_the_validation_course_reads_the_lowest_the_peak_and_the_evaluated_step(
    tmp_path: Path,
) -> None:
    _fake_run(tmp_path, "kemp", "kemp", {"emotion_accuracy": 0.331})
    run = tmp_path / "runs" / "kemp"
    valid = [(4000, 0.384, 43.5), (10000, 0.345, 35.2), (14000, 0.33, 37.3), (16000, 0.32, 38.0)]
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"kind": "valid", "step": s, "emotion_accuracy": a, "ppl_per_example": p})
            + "\n"
            for s, a, p in valid
        )
    )
    info = results_table.read_run(run, None, ["greedy"])
    info.counters = {"step": 20000, "best_step": 14000, "bad_evals": 3}
    lines = results_table._validation_course({"kemp": info, "wo-edd": None}, "greedy")
    assert (
        "| KEMP | 35.20 at step 10,000 | 38.40 at step 4,000 | 14,000 | 37.30 (+6.0%) | 33.00 "
        "| 33.10 |"
    ) in lines
    info.counters = None  # no best kept: the last validation was evaluated
    lines = results_table._validation_course({"kemp": info}, "greedy")
    assert any("| 16,000 | 38.00 (+8.0%) | 32.00 |" in line for line in lines)
    # a run without an emotion head
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "valid", "step": 2, "ppl_per_example": 9})
    )
    info.evaluations = {}
    lines = results_table._validation_course({"transformer": info}, "greedy")
    assert any("| 9.00 at step 2 | - | 2 | 9.00 (+0.0%) | - | - |" in line for line in lines)


def test_the_gap_ab_compares_a_variant_with_kemp_at_their_last_common_validation(
    tmp_path: Path,
) -> None:
    def valid_log(name: str, rows: list[tuple[int, float, float]]) -> None:
        if not (tmp_path / "runs" / name).is_dir():
            _fake_run(tmp_path, name, "kemp", {"perplexity_per_example": 37.77})
        (tmp_path / "runs" / name / "metrics.jsonl").write_text(
            "".join(
                json.dumps(
                    {"kind": "valid", "step": s, "ppl_per_example": p, "emotion_accuracy": a}
                )
                + "\n"
                for s, p, a in rows
            )
        )

    valid_log("kemp", [(6000, 42.71, 0.374), (8000, 37.69, 0.349), (10000, 35.18, 0.345)])
    valid_log("kemp-random", [(6000, 44.84, 0.367), (8000, 39.35, 0.39)])
    runs = {"kemp": results_table.read_run(tmp_path / "runs" / "kemp", None, ["greedy"])}
    lines = results_table._perplexity_gap(runs, None, tmp_path, "greedy")
    assert (
        "- A/B at equal steps: at step 8,000 the `kemp-random` variant (a random word table, "
        "no pre-trained vectors) validates at 39.35 against 37.69 for `kemp` (+4.4%); emotion "
        "accuracy 39.00% against 34.90%. Lowest validation of each: 39.35 (step 8,000) against "
        "35.18 (step 10,000) (+11.9%); test 37.77 against 37.77 (+0.0%)."
    ) in lines
    # both ran on: the A/B moves to the step whose kemp checkpoint was evaluated
    valid_log("kemp-random", [(6000, 44.84, 0.367), (8000, 39.35, 0.39), (10000, 36.0, 0.4)])
    runs["kemp"].counters = {"step": 10000, "best_step": 8000, "bad_evals": 1}
    lines = results_table._perplexity_gap(runs, None, tmp_path, "greedy")
    assert any("at step 8,000 the `kemp-random` variant" in line for line in lines)
    runs["kemp"].counters = None
    lines = results_table._perplexity_gap(runs, None, tmp_path, "greedy")
    assert any("at step 10,000 the `kemp-random` variant" in line for line in lines)


def test_the_accuracy_gap_is_read_from_each_runs_validation_log(tmp_path: Path) -> None:
    _fake_run(tmp_path, "kemp", "kemp", {"emotion_accuracy": 0.3158, "perplexity_per_example": 35})
    (tmp_path / "runs" / "kemp" / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "kind": "valid",
                    "step": s,
                    "ppl_per_example": p,
                    "emotion_accuracy": a,
                    "emotion_nll": n,
                }
            )
            + "\n"
            for s, p, a, n in [(12000, 35.4, 0.3945, 2.16), (20000, 34.3, 0.3539, 2.60)]
        )
    )
    info = results_table.read_run(tmp_path / "runs" / "kemp", None, ["greedy"])
    info.counters = {"step": 26000, "best_step": 20000}
    lines = results_table._accuracy_gap({"kemp": info, "wo-ece": None}, "greedy")
    assert (
        "- KEMP: test 31.58% (-7.73 points); validation accuracy peaks at 39.45% at step 12,000 "
        "and is 35.39% at the evaluated step 20,000 (-4.06 points) (validation emotion NLL "
        "2.16 -> 2.60); at that checkpoint test lies -3.81 points from validation."
    ) in lines
    # no kept checkpoint: nothing to say
    info.counters = None
    assert results_table._accuracy_gap({"kemp": info}, "greedy") == []
