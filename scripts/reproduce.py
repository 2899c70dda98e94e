"""Reproduce KEMP end to end on real data and write docs/RESULTS.md (issue: reproduction).

    python scripts/reproduce.py --data ../shared/data --work work/reproduce

Stages (each is the project's own CLI, run as a subprocess and logged):

1. ``kemp-kg build-index wordnet --lexicon NRC-VAD [--index-flags]`` -> WORK/index
2. ``kemp-kg enrich DATA/ed --index WORK/index [--enrich-flags]``   -> WORK/ed.arrow
3. ``kemp-model score`` on the official KEMP test predictions (DATA/kemp_reference; cheap, so it
   runs early and the official row is there even mid-run)
4. ``kemp-model train --preset P`` for the published presets kemp, wo-ece, wo-edd, transformer
   (the paper's schedule: at most 26,000 steps, validation every 2,000, early stopping after
   three validations without improvement counted from step 13,000, best checkpoint kept), the
   optional CPU presets (``--presets ... kemp-small transformer-small``), every one with GloVe
   6B 50d, then the variants (:data:`VARIANTS`: a preset with one setting changed; by default
   each published preset without pre-trained vectors) -> WORK/runs/NAME
5. ``kemp-model evaluate WORK/runs/NAME --split test --decode D`` for D in greedy, diverse
   (the best checkpoint when the run kept one, else the last)
6. docs/RESULTS.md (+ docs/results/*.png): the table, the ranking, the knowledge ablation,
   curves and a case study (``scripts/results_table.py``).

It resumes where it stopped: WORK/state.json records every finished stage (command, wall time,
machine). A training stage is finished when its run reached the schedule asked for (the
training state's step equals ``--max-steps``) or stopped early; otherwise it is continued with
``--resume`` (bit-exact), also in a later session, as long as WORK survives (work/ is
git-ignored: keep it, or point --work at a folder that persists). ``--steps NAME=N`` caps a
run's schedule; such rows are labelled "[reduced schedule]" in the table. A later run without
the cap continues the same run to the full schedule.

A run folder trained on other knowledge than WORK/ed.arrow (another index source, index rules
or retrieval thresholds, as recorded in its config.json provenance) is never continued or
replaced: train the new knowledge in another --work and compare both with ``--compare``.

WORK does not outlive a session on a fresh machine, and the four presets do not fit in one CPU
session. So a finished, evaluated run is also kept as a *record* in docs/results/runs/NAME
(``scripts/run_records.py``: config, logs, metrics and predictions, no weights; commit it), and a
record that matches what would be trained now (preset, knowledge, schedule, decodings) stands in
for a run WORK does not hold: a later session trains only what is missing, and RESULTS.md shows
every recorded run. ``--records DIR`` moves them, ``--no-records`` turns them off; ``--limit``
smoke runs neither use nor write them.
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
#: The paper's models (Table 2-3 rows), trained by default.
PRESETS = ("kemp", "wo-ece", "wo-edd", "transformer")
#: Cheaper models for CPU users (about 6x fewer parameters); extra rows, only when asked for.
CPU_PRESETS = ("kemp-small", "transformer-small")
DECODES = ("greedy", "diverse")
#: Presets trained with GloVe 6B 50d by default: all of them (the paper initialises from GloVe).
#: The 300-wide published presets take the 50d vectors through a fixed orthonormal map (no 300d
#: offline); on the paper's schedule that beat a random table on validation perplexity and
#: accuracy at every step from 12,000 (README "Training"), though it trails it before 10,000.
GLOVE_PRESETS = PRESETS + CPU_PRESETS
# Variants: a preset with one setting changed (run folder name -> preset, changes keyed
# "SECTION.FIELD" of config.json; "embeddings": True/False for GloVe 50d or none). They show
# what a setting costs, each an A/B against the preset at equal steps; the table lists them
# apart, naming the setting.
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    # our earlier default: the emotion NLL ~tokens-per-batch times heavier than the official code
    "kemp-batchsum": ("kemp", {"loss.reduction": "sum"}),
    # GloVe 50d in the first 50 columns of the 300-wide table
    "kemp-prefix": ("kemp", {"embeddings": True, "embeddings.placement": "prefix"}),
    # our earlier default: a random 300-wide word table, no pre-trained vectors; every
    # published preset has one, so the whole ranking can be read without vectors too
    **{f"{preset}-random": (preset, {"embeddings": False}) for preset in PRESETS},
}
#: Run by default: the presets without vectors (their committed records stand in, so a
#: checkout retrains none of them unless the code's idea of a preset changes).
DEFAULT_VARIANTS = tuple(f"{preset}-random" for preset in PRESETS)
VARIANT_FLAGS = {
    "loss.reduction": "--loss-reduction",
    "model.embedding_dim": "--embedding-dim",
    "embeddings.placement": "--embedding-placement",
}


@dataclass(frozen=True)
class Stage:
    """One resumable step: a command and the files whose presence means it is done.

    Attributes:
        resume_flag: appended when the stage started before but did not finish.
        stale: why existing outputs no longer match the code (None: they do).
        force_flag: appended to redo a stale stage from scratch.
        complete: beyond the outputs existing, whether the stage reached its goal (a training
            run: its schedule or an early stop); a finished stage that is not complete runs again.
        resume_when: whether to resume (default: the stage started and did not finish).
        resume_command: the command that resumes (default: ``command`` + ``resume_flag``).
        leftover: the outputs hold a start that cannot be resumed (a run folder without a
            checkpoint): the stage starts afresh with ``force_flag``.
        redo_on_new_command: a finished stage whose recorded command differs is redone.
        recorded: a committed run record stands in for this stage (returns what it says, or
            None: run the stage as usual); see :mod:`run_records`.
    """

    name: str
    command: list[str]
    outputs: list[Path]
    resume_flag: str | None = None
    stale: Callable[[], str | None] | None = None
    force_flag: str | None = None
    complete: Callable[[], bool] | None = None
    resume_when: Callable[[], bool] | None = None
    resume_command: list[str] | None = None
    leftover: Callable[[], bool] | None = None
    redo_on_new_command: bool = False
    recorded: Callable[[], str | None] | None = None


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
        if not (finished and all(p.exists() for p in stage.outputs)):
            return False
        return stage.complete is None or stage.complete()

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


def _command_changed(stage: Stage, recorded: dict) -> str | None:
    before = recorded.get("command")
    if stage.redo_on_new_command and recorded.get("status") == "done" and before is not None:
        if before != shlex.join(stage.command):
            return f"its command changed (was `{before}`)"
    return None


def run_stage(stage: Stage, state: State, log_dir: Path, env: dict[str, str]) -> None:
    if stage.recorded is not None and (note := stage.recorded()) is not None:
        print(f"[rec ] {stage.name}: {note}", flush=True)
        return
    recorded = state.data.get(stage.name, {})
    why = stage.stale() if stage.stale is not None else None
    why = why or _command_changed(stage, recorded)
    if state.done(stage) and why is None:
        print(f"[skip] {stage.name}: done ({recorded['wall_seconds']:.0f} s)")
        return
    command = list(stage.command)
    if stage.resume_when is not None:
        resuming = stage.resume_when()
    else:
        resuming = bool(stage.resume_flag) and state.started(stage)
    # time already spent: an interrupted start, or a finished stage continued to a longer schedule
    previous = 0.0
    if resuming:
        key = "wall_seconds_before" if state.started(stage) else "wall_seconds"
        previous = float(recorded.get(key, 0.0))
    fields: dict[str, object] = {
        "status": "started",
        "command": shlex.join(stage.command),
        "machine": machine(),
    }
    if why is not None:
        print(f"[redo] {stage.name}: {why}", flush=True)
        previous = 0.0
        fields["wall_seconds_before"] = 0.0
        if stage.force_flag:
            command.append(stage.force_flag)
    elif resuming:
        command = list(stage.resume_command or [*command, stage.resume_flag or ""])
        fields["wall_seconds_before"] = previous
    elif stage.leftover is not None and stage.leftover() and stage.force_flag:
        print(
            f"[redo] {stage.name}: an earlier start left no checkpoint; starting afresh", flush=True
        )
        command.append(stage.force_flag)
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
            state.record(
                stage, status="started", wall_seconds_before=time.perf_counter() - start + previous
            )
            raise SystemExit(
                f"stage {stage.name} interrupted; rerun the command to continue it"
            ) from None
    wall = time.perf_counter() - start + previous
    if code != 0:
        state.record(stage, status="started", wall_seconds_before=wall)
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"stage {stage.name} failed (exit {code}); see {log}:\n" + "\n".join(tail))
    state.record(stage, status="done", wall_seconds=wall, log=str(log))
    print(f"[done] {stage.name}: {wall:.0f} s", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_steps(
    items: list[str], names: tuple[str, ...] = (*PRESETS, *CPU_PRESETS)
) -> dict[str, int]:
    """``NAME=N`` caps; NAME is a preset (capping it and the variants built on it) or a
    variant's run name (capping only that run)."""
    names = (*names, *(n for n in VARIANTS if n not in names))
    steps: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in names or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--steps {item!r}: expected NAME=N (N >= 1) with NAME in {names}")
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
    pretrained = bool(changes.pop("embeddings", preset in GLOVE_PRESETS))
    placement = changes.pop("embeddings.placement", "orthonormal")
    expected: dict[str, dict[str, object]] = {
        "model": to_dict(want.model),
        "train": to_dict(want.train),
        "loss": to_dict(want.loss),
    }
    for key, value in changes.items():
        section, _, field = key.partition(".")
        expected.setdefault(section, {})[field] = value
    # neither the schedule nor the validation subset is compared: `--resume` accepts a new
    # --max-steps and --eval-examples (the table labels a run by what it recorded)
    expected["train"].pop("max_steps")
    expected["train"].pop("eval_examples")
    if not want.model.emotion_classifier:
        expected["loss"].pop("reduction")
    changed = [
        f"{section}.{key} {(recorded.get(section) or {}).get(key)!r} -> {value!r}"
        for section, fields in expected.items()
        for key, value in fields.items()
        if (recorded.get(section) or {}).get(key) != value
    ]
    vectors = recorded.get("embeddings")
    if not pretrained and vectors:
        changed.append("pre-trained vectors -> none")
    elif pretrained and not vectors:
        changed.append("no pre-trained vectors -> GloVe 50d")
    elif isinstance(vectors, dict) and vectors.get("placement") not in (None, placement):
        changed.append(f"embeddings.placement {vectors['placement']!r} -> {placement!r}")
    return f"{run} was trained with " + ", ".join(changed) if changed else None


def knowledge_change(run: Path, graphs: Path) -> str | None:
    """How the knowledge RUN was trained on differs from the graph file GRAPHS (None: the same, or
    nothing to compare yet), from the provenance both record."""
    from results_table import knowledge_differences  # scripts/results_table.py

    from kemp_kg.schema import open_graphs

    config_file = run / "config.json"
    if not (config_file.exists() and graphs.exists()):
        return None
    recorded = json.loads(config_file.read_text()).get("provenance") or {}
    current = dict(open_graphs(graphs).provenance)
    changed = knowledge_differences(recorded, current)
    return ", ".join(changed) if changed else None


def _train_stale(run: Path, preset: str, changes: dict[str, object], graphs: Path) -> str | None:
    other = knowledge_change(run, graphs)
    if other is not None:
        raise SystemExit(
            f"{run} was trained on other knowledge than {graphs} ({other}); it is kept: train "
            "the new knowledge with another --work (RESULTS compares both with --compare "
            f"OLD_WORK), or delete {run} to retrain it"
        )
    return stale_run(run, preset, changes)


def schedule_done(counters: dict, config: dict, max_steps: int) -> bool:
    """Whether training counters say the run reached ``max_steps`` or stopped early (the
    patience its config.json names spent)."""
    if int(counters.get("step", 0)) >= max_steps:
        return True
    patience = int((config.get("train") or {}).get("patience", 0) or 0)
    return patience > 0 and int(counters.get("bad_evals", 0)) >= patience


def train_complete(run: Path, max_steps: int) -> bool:
    """Whether the run in RUN reached ``max_steps`` or stopped early (patience spent), read from
    its training state; a run that ends before early stopping starts (step 13,000 in the paper's
    schedule) keeps no best checkpoint, so the best file cannot tell."""
    from kemp_model.checkpoint import LAST_FILE, read_training_counters

    counters = read_training_counters(run)
    if counters is None or not (run / LAST_FILE).is_file():
        return False
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    return schedule_done(counters, config, max_steps)


def evaluated_checkpoint(run: Path) -> Path:
    """The weights ``kemp-model evaluate`` reads: best when the run kept one, else last."""
    best = run / "best.safetensors"
    return best if best.exists() else run / "last.safetensors"


def _older_than_checkpoint(run: Path, decode: str) -> str | None:
    """An evaluation written before the checkpoint it should read is stale."""
    metrics, weights = run / "eval" / f"test-{decode}.metrics.json", evaluated_checkpoint(run)
    if metrics.exists() and weights.exists() and metrics.stat().st_mtime < weights.stat().st_mtime:
        return f"{metrics} predates {weights}"
    return None


def record_stands_in(
    run: Path,
    record: Path | None,
    preset: str,
    changes: dict[str, object],
    graphs: Path,
    max_steps: int,
    decodes: list[str],
) -> tuple[str | None, str | None]:
    """Whether the committed record RECORD stands in for the run RUN, which WORK does not hold.

    Returns:
        ``(use, why_not)``: ``use`` describes the record when it stands in (the run is neither
        trained nor evaluated); ``why_not`` says why an existing record does not (it is then
        retrained and its record rewritten). Both None: no record, or WORK holds the run.
    """
    from repo_paths import repo_relative
    from run_records import has_evaluation, read_record

    if record is None or (run / "config.json").is_file():
        return None, None
    kept = read_record(record)
    if kept is None:
        return None, None
    shown = repo_relative(str(record))
    stale = stale_run(record, preset, changes)
    if stale is not None:
        return None, f"record {shown} not used: {stale.split(' was trained with ', 1)[-1]}"
    other = knowledge_change(record, graphs)
    if other is not None:
        return None, f"record {shown} not used: other knowledge ({other})"
    config = json.loads((record / "config.json").read_text())
    planned = int((config.get("train") or {}).get("max_steps", 0) or 0)
    counters = kept.get("counters") or {}
    step = int(counters.get("step", 0))
    if planned != max_steps or not schedule_done(counters, config, planned):
        return None, (
            f"record {shown} not used: {step:,} of {planned:,} steps recorded, {max_steps:,} asked"
        )
    missing = [d for d in decodes if not has_evaluation(record, d)]
    if missing:
        return None, f"record {shown} not used: no {', '.join(missing)} evaluation"
    early = f", stopped early at best step {counters['best_step']:,}" if step < planned else ""
    machine_name = (kept.get("train") or {}).get("machine", "n/a")
    return (
        f"finished run recorded in {shown} ({step:,} steps{early}, {machine_name}); "
        "its weights are not kept: delete the record to retrain",
        None,
    )


@dataclass(frozen=True)
class RecordStage:
    """Writes (or refreshes) the committed record of a finished, evaluated run."""

    name: str
    run: Path
    record: Path | None
    max_steps: int
    decodes: list[str]

    def execute(self, state: State) -> None:
        from repo_paths import repo_relative
        from run_records import write_record

        from kemp_model.checkpoint import read_training_counters

        if self.record is None or not (self.run / "config.json").is_file():
            return  # records off (smoke runs), or a record stands in for the run
        evaluated = all(
            (self.run / "eval" / f"test-{d}.metrics.json").is_file()
            and _older_than_checkpoint(self.run, d) is None
            for d in self.decodes
        )
        counters = read_training_counters(self.run)
        if counters is None or not evaluated or not train_complete(self.run, self.max_steps):
            return
        keep = ("command", "machine", "wall_seconds", "log")

        def stage_of(key: str) -> dict:
            return {k: v for k, v in state.data.get(key, {}).items() if k in keep}

        info = {
            "train": stage_of(f"train-{self.run.name}"),
            "evaluations": {d: stage_of(f"evaluate-{self.run.name}-{d}") for d in self.decodes},
            "weights": evaluated_checkpoint(self.run).name,
        }
        wrote = write_record(self.run, self.record, self.decodes, info, counters)
        shown = repo_relative(str(self.record))
        if wrote:
            print(f"[done] {self.name}: wrote {shown} (commit it to keep the run)", flush=True)
        else:
            print(f"[skip] {self.name}: {shown} up to date", flush=True)


def schedule(name: str, preset: str, steps: dict[str, int]) -> int:
    """The steps run NAME (built on PRESET) is trained for: its cap, its preset's, or the
    preset's own schedule."""
    from kemp_model.config import get_preset

    return steps.get(name, steps.get(preset, get_preset(preset).train.max_steps))


def build_stages(args: argparse.Namespace, steps: dict[str, int]) -> list[Stage | RecordStage]:
    bin_dir = Path(sys.executable).parent
    kg, model = str(bin_dir / "kemp-kg"), str(bin_dir / "kemp-model")
    work: Path = args.work
    data: Path = args.data
    graphs = work / "ed.arrow"
    index_flags = shlex.split(getattr(args, "index_flags", "") or "")
    enrich_flags = shlex.split(getattr(args, "enrich_flags", "") or "")
    # records: only for full evaluations (a --limit smoke run neither uses nor writes them)
    records: Path | None = None if args.limit else getattr(args, "records", None)
    stages: list[Stage | RecordStage] = [
        Stage(
            "index",
            [
                kg,
                "build-index",
                "wordnet",
                "--lexicon",
                str(data / "nrc_vad" / "NRC-VAD-Lexicon.txt"),
                "--index",
                str(work / "index"),
                *index_flags,
            ],
            [work / "index" / "manifest.json"],
            force_flag="--force",
            redo_on_new_command=True,
        ),
        Stage(
            "enrich",
            [
                kg,
                "enrich",
                str(data / "ed"),
                "--index",
                str(work / "index"),
                "--out",
                str(graphs),
                *enrich_flags,
            ],
            [graphs],
            redo_on_new_command=True,
            stale=lambda: _newer(work / "index" / "manifest.json", graphs),
        ),
    ]
    reference = data / "kemp_reference" / "KEMP_test_predictions.txt"
    stages.append(  # cheap: early, so the official row is there even mid-run
        Stage(
            "score-official",
            [model, "score", str(reference), "--json", str(work / "official.metrics.json")],
            [work / "official.metrics.json"],
            redo_on_new_command=True,
        )
    )
    embeddings = data / "vectors" / "glove.6B.50d.npy"
    runs = [(preset, preset, {}) for preset in args.presets]
    runs += [(name, *VARIANTS[name]) for name in args.variants]
    valid_examples = int(getattr(args, "valid_examples", 0) or 0)
    for name, preset, changes in runs:
        run = work / "runs" / name
        max_steps = schedule(name, preset, steps)
        # always explicit, so that --resume moves the run to the schedule asked for now
        common = [
            "--max-steps",
            str(max_steps),
            "--eval-examples",
            str(valid_examples),
            "--device",
            args.device,
            "--no-progress",
        ]
        if args.threads:
            common += ["--threads", str(args.threads)]
        command = [
            model,
            "train",
            "--graphs",
            str(graphs),
            "--preset",
            preset,
            "--out",
            str(run),
            *common,
        ]
        if changes.get("embeddings", preset in GLOVE_PRESETS):
            command += ["--embeddings", str(embeddings)]
        for field, value in changes.items():
            if field != "embeddings":
                command += [VARIANT_FLAGS[field], str(value)]
        # resuming names only what --resume may change: the rest is the stored run's
        resume = [model, "train", "--graphs", str(graphs), "--out", str(run), "--resume", *common]
        record = None if records is None else records / name

        def stand_in(
            say: bool, run=run, record=record, preset=preset, changes=changes, n=max_steps
        ) -> str | None:
            use, why_not = record_stands_in(
                run, record, preset, changes, graphs, n, list(args.decodes)
            )
            if why_not is not None and say:
                print(f"[note] {why_not}", flush=True)
            return use

        stages.append(
            Stage(
                f"train-{name}",
                command,
                [run / "last.safetensors"],
                "--resume",
                stale=lambda run=run, p=preset, c=changes: _train_stale(run, p, c, graphs),
                force_flag="--force",
                complete=lambda run=run, n=max_steps: train_complete(run, n),
                resume_when=lambda run=run: (run / "last.state.safetensors").is_file(),
                resume_command=resume,
                leftover=lambda run=run: (run / "config.json").is_file(),
                recorded=lambda stand_in=stand_in: stand_in(True),
            )
        )
        for decode in args.decodes:
            stages.append(
                Stage(
                    f"evaluate-{name}-{decode}",
                    [
                        model,
                        "evaluate",
                        str(run),
                        "--graphs",
                        str(graphs),
                        "--split",
                        "test",
                        "--decode",
                        decode,
                        "--device",
                        args.device,
                        *(["--threads", str(args.threads)] if args.threads else []),
                        *(["--limit", str(args.limit)] if args.limit else []),
                    ],
                    [run / "eval" / f"test-{decode}.metrics.json"],
                    stale=lambda run=run, decode=decode: _older_than_checkpoint(run, decode),
                    redo_on_new_command=True,
                    recorded=lambda stand_in=stand_in: stand_in(False),
                )
            )
        stages.append(RecordStage(f"record-{name}", run, record, max_steps, list(args.decodes)))
    return stages


def _newer(source: Path, output: Path) -> str | None:
    """OUTPUT is stale when SOURCE was rewritten after it (a rebuilt index)."""
    if source.exists() and output.exists() and output.stat().st_mtime < source.stat().st_mtime:
        return f"{source} is newer than {output}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO / "work" / "reproduce",
        help="where index, graphs, runs and state.json live (keep it to resume)",
    )
    parser.add_argument(
        "--presets",
        nargs="*",
        default=list(PRESETS),
        choices=[*PRESETS, *CPU_PRESETS],
        help=f"presets to train (default: {' '.join(PRESETS)}; add "
        f"{' '.join(CPU_PRESETS)} for the cheaper CPU models)",
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=list(DEFAULT_VARIANTS),
        choices=list(VARIANTS),
        help="variant runs after the presets (none: --variants with no name)",
    )
    parser.add_argument("--decodes", nargs="+", default=list(DECODES))
    parser.add_argument(
        "--steps",
        nargs="*",
        default=[],
        help="NAME=N caps for a preset (and its variants) or a variant (reduced rows)",
    )
    parser.add_argument(
        "--valid-examples",
        type=int,
        default=0,
        help="validate on at most N examples (0 = the whole split; smoke runs)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--limit", type=int, default=0, help="evaluate only N test examples (smoke runs)"
    )
    parser.add_argument(
        "--index-flags", default="", help="extra `kemp-kg build-index` flags (quoted)"
    )
    parser.add_argument("--enrich-flags", default="", help="extra `kemp-kg enrich` flags (quoted)")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="*",
        default=None,
        help="other --work folders, or folders of run records, whose kemp/wo-ece runs used "
        "other knowledge (RESULTS' knowledge ablation shows them beside these; default: the "
        "record folders under docs/results/compare; none: --compare with no folder)",
    )
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "RESULTS.md")
    parser.add_argument(
        "--records",
        type=Path,
        default=None,
        help="committed records of finished runs (default docs/results/runs): written when a "
        "run is finished and evaluated, and standing in for a matching run WORK does not hold "
        "(a later session trains only what is missing)",
    )
    parser.add_argument(
        "--no-records", action="store_true", help="neither use nor write run records"
    )
    parser.add_argument("--only-results", action="store_true", help="just rewrite RESULTS.md")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    args.work = args.work.resolve()
    args.data = args.data.resolve()
    from run_records import DEFAULT_COMPARE, DEFAULT_RECORDS, holds_records

    if args.compare is None:
        args.compare = sorted(p for p in DEFAULT_COMPARE.glob("*") if holds_records(p))
    args.compare = [p.resolve() for p in args.compare]

    args.records = None if args.no_records else (args.records or DEFAULT_RECORDS).resolve()
    steps = parse_steps(args.steps, (*PRESETS, *CPU_PRESETS))
    if args.valid_examples < 0 or args.limit < 0:
        raise SystemExit("--valid-examples and --limit must be >= 0")
    for need in ("ed", "nrc_vad", "vectors", "kemp_reference"):
        if not (args.data / need).exists():
            raise SystemExit(f"{args.data / need}: missing; run `kemp-kg download all --to DIR`")
    for other in args.compare:
        if not (other / "runs").is_dir() and not holds_records(other):
            raise SystemExit(
                f"--compare {other}: neither a reproduce --work folder (no runs/) "
                "nor a folder of run records (no NAME/record.json)"
            )
    args.work.mkdir(parents=True, exist_ok=True)
    log_dir = args.work / "logs"
    log_dir.mkdir(exist_ok=True)
    state = State(args.work / "state.json")
    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(args.data.parent / "nltk_data"))
    stages = build_stages(args, steps)
    if not args.only_results:
        for stage in stages:
            if isinstance(stage, RecordStage):
                stage.execute(state)
            else:
                run_stage(stage, state, log_dir, env)
    from results_table import write_results  # scripts/results_table.py

    write_results(args, state, args.results)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
