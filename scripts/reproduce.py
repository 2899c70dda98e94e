"""Reproduce KEMP end to end on real data and write docs/RESULTS.md (issue: reproduction).

    python scripts/reproduce.py --data ../shared/data --work work/reproduce

Stages (each is the project's own CLI, run as a subprocess and logged):

1. ``kemp-kg build-index wordnet --lexicon NRC-VAD``          -> WORK/index
2. ``kemp-kg enrich DATA/ed --index WORK/index``               -> WORK/ed.arrow
3. ``kemp-model train --preset P`` for kemp, wo-ece, wo-edd, transformer -> WORK/runs/P,
   then the variants (:data:`VARIANTS`: a preset with one setting changed) -> WORK/runs/NAME
4. ``kemp-model evaluate WORK/runs/P --split test --decode D``  for D in greedy, diverse
5. ``kemp-model score`` on the official KEMP test predictions (DATA/kemp_reference; run right
   after enrich, it is cheap)
6. docs/RESULTS.md (+ docs/results/*.png): the table, curves and a case study.

It resumes where it stopped: WORK/state.json records every finished stage (command, wall time,
machine); a finished stage is skipped while its outputs exist, and an unfinished training run is
continued with ``--resume`` (bit-exact). ``--steps P=N`` caps a preset's schedule; such rows are
labelled "reduced" in the table.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("kemp", "wo-ece", "wo-edd", "transformer")
DECODES = ("greedy", "diverse")
# Variants: a preset with one setting changed (run folder name -> preset, changes keyed
# "SECTION.FIELD" of config.json, or "embeddings": None for no pre-trained vectors). They show
# what a setting costs; the table lists them apart, naming the setting.
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    # our earlier default: the emotion NLL ~tokens-per-batch times heavier than the official code
    "kemp-batchsum": ("kemp", {"loss.reduction": "sum"}),
    # GloVe 50d in the first 50 columns of the 300-wide table instead of an orthonormal map
    "kemp-prefix": ("kemp", {"embeddings.placement": "prefix"}),
    # no pre-trained vectors: a randomly initialised 300-wide table (the paper's width)
    "kemp-noglove": ("kemp", {"embeddings": None}),
}
DEFAULT_VARIANTS = ("kemp-noglove",)
VARIANT_FLAGS = {
    "loss.reduction": "--loss-reduction",
    "model.embedding_dim": "--embedding-dim",
    "embeddings.placement": "--embedding-placement",
}


@dataclass(frozen=True)
class Stage:
    """One resumable step: a command and the files whose presence means it is done."""

    name: str
    command: list[str]
    outputs: list[Path]
    resume_flag: str | None = None  # appended when the stage started before but did not finish
    stale: Callable[[], str | None] | None = None  # why existing outputs no longer match the code
    force_flag: str | None = None  # appended to redo a stale stage from scratch


def machine() -> str:
    cpus = os.cpu_count() or 0
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (GPU)"
    except ImportError:  # pragma: no cover - the venv always has torch
        pass
    return f"{platform.machine()} CPU x{cpus}"


class State:
    """WORK/state.json: finished stages with their command, wall time and machine (atomic)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def done(self, stage: Stage) -> bool:
        finished = self.data.get(stage.name, {}).get("status") == "done"
        return finished and all(p.exists() for p in stage.outputs)

    def started(self, stage: Stage) -> bool:
        return self.data.get(stage.name, {}).get("status") == "started"

    def record(self, stage: Stage, **fields: object) -> None:
        # read-merge-write under a lock: another reproduce process may run other presets
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():
                self.data = json.loads(self.path.read_text())
            self.data[stage.name] = {**self.data.get(stage.name, {}), **fields}
            tmp = self.path.with_suffix(f".json.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
            os.replace(tmp, self.path)


def run_stage(stage: Stage, state: State, log_dir: Path, env: dict[str, str]) -> None:
    why = stage.stale() if stage.stale is not None else None
    if state.done(stage) and why is None:
        print(f"[skip] {stage.name}: done ({state.data[stage.name]['wall_seconds']:.0f} s)")
        return
    command = list(stage.command)
    resuming = bool(stage.resume_flag) and state.started(stage)
    previous = state.data.get(stage.name, {}).get("wall_seconds_before", 0.0) if resuming else 0.0
    fields: dict[str, object] = {"status": "started", "command": shlex.join(stage.command), "machine": machine()}
    if why is not None:
        print(f"[redo] {stage.name}: {why}", flush=True)
        previous = 0.0
        fields["wall_seconds_before"] = 0.0
        if stage.force_flag:
            command.append(stage.force_flag)
    elif resuming:
        command.append(stage.resume_flag)
    print(f"[run ] {stage.name}: {shlex.join(command)}", flush=True)
    state.record(stage, **fields)
    log = log_dir / f"{stage.name}.log"
    start = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ {shlex.join(command)}\n")
        handle.flush()
        try:
            code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the time spent, the rerun resumes
            state.record(stage, status="started",
                         wall_seconds_before=time.perf_counter() - start + float(previous))
            raise SystemExit(f"stage {stage.name} interrupted; rerun the command to continue it") from None
    wall = time.perf_counter() - start + float(previous)
    if code != 0:
        state.record(stage, status="started", wall_seconds_before=wall)
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"stage {stage.name} failed (exit {code}); see {log}:\n" + "\n".join(tail))
    state.record(stage, status="done", wall_seconds=wall, log=str(log))
    print(f"[done] {stage.name}: {wall:.0f} s", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_steps(items: list[str]) -> dict[str, int]:
    steps: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in PRESETS or not value.isdigit():
            raise SystemExit(f"--steps {item!r}: expected PRESET=N with PRESET in {PRESETS}")
        steps[name] = int(value)
    return steps


def stale_run(run: Path, preset: str, changes: dict[str, object] | None = None) -> str | None:
    """Why the run folder RUN no longer matches PRESET as the code defines it now (None if it does
    or holds no run yet). A changed default (a loss, a schedule) must not leave an old run in the
    table under the preset's name. The loss reduction is ignored for presets without an emotion
    classifier: their emotion term is zero, so it cannot change a gradient."""
    from kemp_model.config import get_preset, split_legacy_model_dict, to_dict

    config_file = run / "config.json"
    if not config_file.exists():
        return None
    recorded = json.loads(config_file.read_text())
    model, legacy_loss = split_legacy_model_dict(recorded.get("model", {}))
    recorded = {**recorded, "model": model, "loss": {**legacy_loss, **(recorded.get("loss") or {})}}
    want = get_preset(preset)
    changes = dict(changes or {})
    pretrained = changes.pop("embeddings", True)  # None: trained without pre-trained vectors
    expected: dict[str, dict[str, object]] = {
        "model": to_dict(want.model), "train": to_dict(want.train), "loss": to_dict(want.loss),
    }  # fmt: skip
    for key, value in changes.items():
        section, _, field = key.partition(".")
        expected.setdefault(section, {})[field] = value
    # the schedule is not compared: `--resume` accepts a new --max-steps, so an unfinished run
    # continues under a changed --steps cap (the table labels a run by its recorded schedule)
    expected["train"].pop("max_steps")
    if not want.model.emotion_classifier:
        expected["loss"].pop("reduction")
    changed = [
        f"{section}.{key} {(recorded.get(section) or {}).get(key)!r} -> {value!r}"
        for section, fields in expected.items()
        for key, value in fields.items()
        if (recorded.get(section) or {}).get(key) != value
    ]
    if pretrained is None and recorded.get("embeddings"):
        changed.append("pre-trained vectors -> none")
    return f"{run} was trained with " + ", ".join(changed) if changed else None


def _older_than_checkpoint(run: Path, decode: str) -> str | None:
    """An evaluation written before the run's current best checkpoint is stale."""
    metrics, best = run / "eval" / f"test-{decode}.metrics.json", run / "best.safetensors"
    if metrics.exists() and best.exists() and metrics.stat().st_mtime < best.stat().st_mtime:
        return f"{metrics} predates {best}"
    return None


def build_stages(args: argparse.Namespace, steps: dict[str, int]) -> list[Stage]:
    bin_dir = Path(sys.executable).parent
    kg, model = str(bin_dir / "kemp-kg"), str(bin_dir / "kemp-model")
    work: Path = args.work
    data: Path = args.data
    stages = [
        Stage(
            "index",
            [kg, "build-index", "wordnet", "--lexicon", str(data / "nrc_vad" / "NRC-VAD-Lexicon.txt"),
             "--index", str(work / "index")],
            [work / "index" / "manifest.json"],
        ),
        Stage(
            "enrich",
            [kg, "enrich", str(data / "ed"), "--index", str(work / "index"),
             "--out", str(work / "ed.arrow")],
            [work / "ed.arrow"],
        ),
    ]
    reference = data / "kemp_reference" / "KEMP_test_predictions.txt"
    stages.append(  # cheap: early, so the official row is there even mid-run
        Stage(
            "score-official",
            [model, "score", str(reference), "--json", str(work / "official.metrics.json")],
            [work / "official.metrics.json"],
        )
    )
    embeddings = data / "vectors" / "glove.6B.50d.npy"
    runs = [(preset, preset, {}) for preset in args.presets]
    runs += [(name, *VARIANTS[name]) for name in args.variants]
    for name, preset, changes in runs:
        run = work / "runs" / name
        command = [model, "train", "--graphs", str(work / "ed.arrow"), "--preset", preset,
                   "--out", str(run), "--device", args.device, "--no-progress"]
        if changes.get("embeddings", embeddings) is not None:
            command += ["--embeddings", str(embeddings)]
        for field, value in changes.items():
            if field != "embeddings":
                command += [VARIANT_FLAGS[field], str(value)]
        if preset in steps:
            command += ["--max-steps", str(steps[preset])]
        if args.threads:
            command += ["--threads", str(args.threads)]
        stale = lambda run=run, p=preset, c=changes: stale_run(run, p, c)  # noqa: E731
        stages.append(
            Stage(f"train-{name}", command, [run / "best.safetensors"], "--resume", stale, "--force")
        )
        for decode in args.decodes:
            stages.append(
                Stage(
                    f"evaluate-{name}-{decode}",
                    [model, "evaluate", str(run), "--graphs", str(work / "ed.arrow"),
                     "--split", "test", "--decode", decode, "--device", args.device,
                     *(["--limit", str(args.limit)] if args.limit else [])],
                    [run / "eval" / f"test-{decode}.metrics.json"],
                    stale=lambda run=run, decode=decode: _older_than_checkpoint(run, decode),
                )
            )
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "work" / "reproduce")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS),
                        help="variant runs after the presets (none: --variants with no name)")
    parser.add_argument("--decodes", nargs="+", default=list(DECODES))
    parser.add_argument("--steps", nargs="*", default=[], help="PRESET=N caps (reduced rows)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="evaluate only N test examples (smoke runs)")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "RESULTS.md")
    parser.add_argument("--only-results", action="store_true", help="just rewrite RESULTS.md")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    args.work = args.work.resolve()
    args.data = args.data.resolve()
    steps = parse_steps(args.steps)
    for need in ("ed", "nrc_vad", "vectors", "kemp_reference"):
        if not (args.data / need).exists():
            raise SystemExit(f"{args.data / need}: missing; run `kemp-kg download all --to DIR`")
    args.work.mkdir(parents=True, exist_ok=True)
    log_dir = args.work / "logs"
    log_dir.mkdir(exist_ok=True)
    state = State(args.work / "state.json")
    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(args.data.parent / "nltk_data"))
    stages = build_stages(args, steps)
    if not args.only_results:
        for stage in stages:
            run_stage(stage, state, log_dir, env)
    from results_table import write_results  # scripts/results_table.py

    write_results(args, state, args.results)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
