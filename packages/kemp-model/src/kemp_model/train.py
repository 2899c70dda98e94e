"""The training recipe (torchtune style): :meth:`Trainer.setup`, :meth:`~Trainer.step`,
:meth:`~Trainer.evaluate`, :meth:`~Trainer.save`, :meth:`~Trainer.fit`.

What to train is decided before anything is built: :func:`kemp_model.run_setup.resolve_run`
turns the request into a :class:`~kemp_model.run_setup.ResolvedRun`; the trainer builds the
model, optimizer and sampler from it, and the objective is :class:`kemp_model.loss.Loss`.

One process or many: under ``torchrun`` (``WORLD_SIZE`` > 1) the recipe joins a process group
(gloo on CPU, NCCL on GPU), wraps the model in DistributedDataParallel, and every rank takes its
slice of each GLOBAL batch (``TrainConfig.batch_size``). Losses are normalised by the global token
and example counts, so N ranks compute the same update as one process with the whole batch.

Resume is bit-exact: ``last.state.safetensors`` holds weights, Adam moments, every rank's RNG
state, the :class:`Counters` (sampler position, early stopping, the partial log window); the
batch order is a pure function of ``(seed, epoch)``.

Validation reports two perplexities (docs/DESIGN.md §7): ``ppl_per_example``, the
paper's (exp of the mean over examples of each example's mean token NLL), which early stopping
follows, and ``ppl_pooled`` (exp of the mean NLL over all tokens of the split).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from kemp_kg import schema
from kemp_model import checkpoint as ckpt
from kemp_model.checkpoint import read_metrics
from kemp_model.data import Batch, BatchSampler, GraphDataset
from kemp_model.device import resolve_device
from kemp_model.loss import Loss
from kemp_model.metrics import AverageMetric, Metrics, PerplexityMetric
from kemp_model.model import KEMP, ModelOutput
from kemp_model.run_setup import ResolvedRun, TrainJob, resolve_run

#: Seconds between curve plots during training (the final save always plots).
PLOT_EVERY_S = 300.0
#: Order of the per-step statistics vector.
STATS = (
    "generation_loss",
    "generation_nll",
    "emotion_nll",
    "attention_loss",
    "tokens",
    "examples",
    "emotion_correct",
    "loss",
)


@dataclass
class TrainSummary:
    """What a finished (or early-stopped) run reports."""

    run_dir: Path
    steps: int
    examples: int
    elapsed_s: float
    examples_per_s: float
    best_perplexity: float | None
    best_step: int | None
    last_valid: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    resumed_from: int | None = None
    device: str = "cpu"
    world_size: int = 1
    parameters: int = 0
    notes: list[str] = field(default_factory=list)
    #: seconds of this session spent validating and writing checkpoints; ``examples_per_s``
    #: (like the progress bar's figure) counts the training steps' time only
    validation_s: float = 0.0


#: Steps timed before :func:`cpu_guidance` judges the schedule's length.
GUIDANCE_AFTER_STEPS = 10
#: A schedule longer than this (seconds) on a CPU gets a guidance line.
GUIDANCE_OVER_S = 3600.0


def cpu_guidance(
    device: str, preset: str, remaining_steps: int, seconds_per_step: float
) -> str | None:
    """One line for a CPU user whose schedule would take hours, else ``None``."""
    eta = remaining_steps * seconds_per_step
    if not device.startswith("cpu") or eta <= GUIDANCE_OVER_S:
        return None
    options = [] if preset == "tiny" else ["--preset tiny (minutes)"]
    options.append(
        f"--max-steps {max(100, int(GUIDANCE_OVER_S / 4 / seconds_per_step)):,} "
        "(about 15 minutes, enough to see the curves move)"
    )
    return (
        f"about {eta / 3600:.1f} h to go on this CPU ({seconds_per_step:.2f} s per step); for a "
        f"first try use {' or '.join(options)}; the full schedule wants a GPU (--device cuda), "
        "and --resume continues this run later"
    )


@dataclass
class Counters:
    """Everything the loop advances and ``--resume`` restores (JSON in the training state).

    Attributes:
        step: optimiser steps taken.
        epoch, position: the sampler's epoch and the batches of it already consumed.
        best_ppl, best_step: the best validation perplexity (per-example) and its step.
        bad_evals: validations since the best one (early stopping).
        window_steps: steps in the partial training-log window.
        elapsed_s, examples: training time and examples of the sessions before this one.
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    best_ppl: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    window_steps: int = 0
    elapsed_s: float = 0.0
    examples: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counters:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def noam_lr(step: int, hidden_dim: int, warmup: int, factor: float) -> float:
    """The Transformer schedule: ``factor * d^-0.5 * min(step^-0.5, step * warmup^-1.5)``."""
    step = max(step, 1)
    return factor * hidden_dim**-0.5 * min(step**-0.5, step * warmup**-1.5)


def valid_perplexity(record: dict[str, Any]) -> float | None:
    """The perplexity early stopping follows, from a ``valid`` record of ``metrics.jsonl``
    (``ppl_per_example``; runs logged before it existed have only the pooled ``ppl``)."""
    value = record.get("ppl_per_example", record.get("ppl"))
    return None if value is None else float(value)


def plot_curves(
    records: Sequence[dict[str, Any]], out: Path, title: str, emotion: bool = True
) -> None:
    """Training curves as a PNG (atomically): train loss and token NLL; valid perplexity and,
    when the model has an emotion head (``emotion``), valid emotion accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train" and "loss" in r]
    valid = [r for r in records if r.get("kind") == "valid" and valid_perplexity(r) is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss (Eq. 21)")
    left.plot(
        [r["step"] for r in train], [r["generation_nll"] for r in train], label="train token NLL"
    )
    left.set_xlabel("step")
    left.legend()
    if valid:
        steps = [r["step"] for r in valid]
        right.plot(
            steps,
            [valid_perplexity(r) for r in valid],
            "o-",
            label="valid perplexity (per-example, the paper's)",
        )
        if all("ppl_pooled" in r for r in valid):
            right.plot(
                steps,
                [r["ppl_pooled"] for r in valid],
                ".:",
                color="tab:blue",
                label="valid perplexity (pooled tokens)",
            )
        handles = right.get_legend_handles_labels()[0]
        if emotion and all("emotion_accuracy" in r for r in valid):
            twin = right.twinx()
            twin.plot(
                [r["step"] for r in valid],
                [r["emotion_accuracy"] for r in valid],
                "s--",
                color="tab:orange",
                label="valid emotion accuracy",
            )
            twin.set_ylabel("emotion accuracy")
            handles += twin.get_legend_handles_labels()[0]
        right.legend(handles, [h.get_label() for h in handles], loc="upper right")
    right.set_xlabel("step")
    right.set_ylabel("perplexity")
    fig.suptitle(title)
    fig.tight_layout()
    with ckpt.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _rng_state(device: torch.device) -> torch.Tensor:
    state = torch.get_rng_state()
    if device.type == "cuda":
        state = torch.cat([state, torch.cuda.get_rng_state(device)])
    return state


def _set_rng_state(state: torch.Tensor, device: torch.device) -> None:
    cpu_size = torch.get_rng_state().numel()
    torch.set_rng_state(state[:cpu_size].clone())
    if device.type == "cuda" and state.numel() > cpu_size:
        torch.cuda.set_rng_state(state[cpu_size:].clone(), device)


class Trainer:
    """The recipe. ``Trainer.setup(job).fit()`` (what :func:`train` does).

    Everything is built in the constructor from a :class:`ResolvedRun`; the other methods only
    advance it. Attributes: ``config`` (the :class:`~kemp_model.checkpoint.RunConfig`),
    ``model``, ``net`` (the model, DDP-wrapped when distributed), ``optimizer``, ``loss``,
    ``sampler``, ``counters``, ``history`` (the records of ``metrics.jsonl``).
    """

    def __init__(
        self,
        run: ResolvedRun,
        job: TrainJob,
        *,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        config = run.config
        tc = config.train
        self.job, self.config, self.vocab = job, config, run.vocab
        self.device, self.rank, self.world_size = device, rank, world_size
        self.distributed = world_size > 1
        self.is_main = rank == 0
        self.run_dir = Path(job.out)
        self.notes = list(run.notes)
        if tc.batch_size % world_size:
            raise ValueError(
                f"--batch-size {tc.batch_size} is not divisible by {world_size} processes"
            )
        self.train_data = run.train_data
        self.valid_data = GraphDataset(run.train_data.graphs, tc.valid_split)
        if len(self.valid_data) == 0:
            self.notes.append(f"no {tc.valid_split!r} rows: no validation, no early stopping")

        torch.manual_seed(tc.seed)
        model = KEMP(config.model, len(run.vocab))
        if run.vectors is not None:
            model.load_vectors(run.vectors.table, run.vectors.present)
        self.model = model.to(device)
        self.parameters = sum(p.numel() for p in model.parameters())
        # the fused kernel: one pass over the 12.5M parameters of `kemp` instead of a chain of
        # foreach ops (about 5x less CPU time per update here, bench/bench_step.py)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=0.0, betas=tc.adam_betas, eps=tc.adam_eps, fused=True
        )
        self.loss = Loss(config.loss, len(run.vocab))
        self.counters = Counters()
        self.window = torch.zeros(len(STATS), dtype=torch.float64, device=device)
        self.history: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # A resume records its new schedule (--max-steps, --patience, ...) with its first
        # checkpoint, so a resumed run killed before one leaves the folder as it found it.
        self.config_pending = run.resume
        if run.resume:
            self._restore()
        elif self.is_main:
            for name in ckpt.RUN_FILES:  # --force: the previous run's files go
                (self.run_dir / name).unlink(missing_ok=True)
            ckpt.write_run_config(self.run_dir, config, run.vocab)

        self.use_bf16 = tc.bf16 and device.type == "cuda"
        if tc.bf16 and not self.use_bf16:
            self.notes.append("--bf16 ignored on CPU")
        self.net: torch.nn.Module = self.model
        if tc.compile:  # per layer: see KEMP.compile_layers (the first steps wait for it)
            self.model.compile_layers()
        if self.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=not config.model.emotion_classifier,
            )
        self.sampler = BatchSampler(
            self.train_data.sizes(),
            batch_size=tc.batch_size,
            seed=tc.seed,
            epoch=self.counters.epoch,
            bucket_batches=tc.bucket_batches,
            rank=rank,
            world_size=world_size,
        )
        # this session's clock: wall time and examples/s count from here
        self.session_started = time.perf_counter()
        self.session_first_step = self.counters.step
        self.plotted_at = self.session_started
        self.window_started = self.session_started
        self.paused_s = 0.0  # this session's time in validation and checkpoints
        self.window_first_step = self.counters.step

    @classmethod
    def setup(
        cls, job: TrainJob, rank: int | None = None, world_size: int | None = None
    ) -> Trainer:
        """Join the process group (if any), resolve the job and build the trainer."""
        rank = rank if rank is not None else int(os.environ.get("RANK", 0))
        world_size = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", 1))
        device = resolve_device(job.device)
        if job.threads:
            torch.set_num_threads(job.threads)
        if world_size > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, rank=rank, world_size=world_size)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        run = resolve_run(job)
        if world_size > 1:  # every rank has checked the run folder before rank 0 writes to it
            dist.barrier()
        return cls(run, job, device=device, rank=rank, world_size=world_size)

    def _restore(self) -> None:
        state = ckpt.load_training_state(self.run_dir / ckpt.STATE_FILE, self.model, self.optimizer)
        self.counters = Counters.from_json(state.extra)
        if "window" in state.tensors:
            self.window = state.tensors["window"].to(self.device, torch.float64)
        rng = state.rng_states
        if len(rng) == self.world_size:
            _set_rng_state(rng[self.rank], self.device)
        else:
            _set_rng_state(rng[0], self.device)
            self.notes.append(
                f"resumed with {self.world_size} processes, saved with {len(rng)}: dropout noise differs"
            )
        self.resumed_from = self.counters.step
        # metrics.jsonl: keep what the restored state had logged (a killed run may have written more)
        self.history = [
            r for r in read_metrics(self.run_dir) if r.get("step", 0) <= self.counters.step
        ]
        if self.is_main:
            with ckpt.atomic_path(self.run_dir / ckpt.METRICS_FILE) as tmp:
                tmp.write_text(
                    "".join(json.dumps(r) + "\n" for r in self.history), encoding="utf-8"
                )

    # ------------------------------------------------------------------ steps
    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            buffer = tensor.to(self.device)
            dist.all_reduce(buffer)
            return buffer.to(tensor.device)
        return tensor

    def _autocast(self):
        if self.use_bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def counts(self, batch: Batch) -> torch.Tensor:
        """Global (all-rank) target tokens and labelled examples of a step: the loss normalisers.

        Call it on the CPU batch (before the device copy) so it costs no device sync.
        """
        examples = (
            int((batch.emotion >= 0).sum()) if self.config.model.emotion_classifier else len(batch)
        )
        counts = torch.tensor([batch.token_count, examples], dtype=torch.float64)
        return self._all_reduce(counts).clamp(min=1)

    def step(self, batch: Batch, counts: torch.Tensor | None = None) -> torch.Tensor:
        """One optimiser step on this rank's slice of a global batch.

        Returns the detached statistics vector (:data:`STATS`) on the device (no sync).
        """
        tc = self.config.train
        self.net.train()
        if counts is None:
            counts = self.counts(batch)
        with self._autocast():
            out: ModelOutput = self.net(batch, smoothing=self.loss.smoothing)
        loss = self.loss(out, float(counts[0]), float(counts[1]))
        (loss * self.world_size).backward()  # DDP averages gradients over ranks
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.counters.step += 1
        lr = noam_lr(
            self.counters.step, self.config.model.hidden_dim, tc.warmup_steps, tc.noam_factor
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return torch.stack(
            [
                self.loss.generation_sum(out).detach(),
                out.generation_nll_sum.detach(),
                out.emotion_nll_sum.detach(),
                out.attention_loss_sum.detach(),
                out.token_count,
                out.example_count,
                out.emotion_correct,
                loss.detach(),
            ]
        ).double()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation perplexities (per-example and pooled, no smoothing), emotion accuracy
        and the unweighted loss terms."""
        tc = self.config.train
        self.model.eval()
        sizes = self.valid_data.sizes()
        if tc.eval_examples:
            sizes = sizes[: tc.eval_examples]
        per_rank = max(tc.batch_size // self.world_size, 1) * 4
        sampler = BatchSampler(
            sizes,
            batch_size=per_rank * self.world_size,
            shuffle=False,
            bucket_batches=10**9,
            rank=self.rank,
            world_size=self.world_size,
            drop_last=False,
        )
        total = Metrics()
        for rows in sampler:
            if len(rows) == 0:
                continue
            batch = self._to_device(self.valid_data.collate(torch.from_numpy(rows)))
            with self._autocast():
                out = self.model(batch)
            total += validation_metrics(out, len(batch))
        return self._without_absent_heads(total.all_reduce().value())

    def _without_absent_heads(self, record: dict[str, float]) -> dict[str, float]:
        """Drop the emotion (and attention) figures of a model that has no such head: the
        baseline's untrained emotion logits would report a chance "accuracy"."""
        model = self.config.model
        absent = set()
        if not model.emotion_classifier:
            absent |= {"emotion_accuracy", "emotion_nll"}
        if not model.attention_loss:
            absent.add("attention_loss")
        return {k: v for k, v in record.items() if k not in absent}

    def _to_device(self, batch: Batch) -> Batch:
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch

    # ------------------------------------------------------------------ saving
    def save(self, best: bool, final: bool = False) -> None:
        """Write ``last`` (and ``best``) atomically; every rank must call it (RNG gather)."""
        rng = _rng_state(self.device)
        if self.distributed:
            backend_device = self.device if self.device.type == "cuda" else torch.device("cpu")
            gathered = [
                torch.empty_like(rng, device=backend_device) for _ in range(self.world_size)
            ]
            dist.all_gather(gathered, rng.to(backend_device))
            rng_states = [g.cpu() for g in gathered]
        else:
            rng_states = [rng]
        if self.is_main:
            identity = {"preset": self.config.preset, "vocab_sha256": self.config.vocab_sha256}
            counters = {
                **asdict(self.counters),
                "elapsed_s": self._elapsed(),
                "examples": self._examples(),
            }
            ckpt.save_training_state(
                self.run_dir / ckpt.STATE_FILE,
                self.model,
                self.optimizer,
                rng_states,
                {**counters, **identity},
                tensors={"window": self.window},
            )
            metadata = {"step": str(self.counters.step), **identity}
            ckpt.save_weights(self.run_dir / ckpt.LAST_FILE, self.model, metadata)
            if best:
                ckpt.save_weights(self.run_dir / ckpt.BEST_FILE, self.model, metadata)
            if self.config_pending:  # after the checkpoint: a kill before it changes nothing
                ckpt.write_run_config(self.run_dir, self.config, self.vocab)
                self.config_pending = False
            if final or time.perf_counter() - self.plotted_at > PLOT_EVERY_S:
                self.plotted_at = time.perf_counter()
                plot_curves(
                    self.history,
                    self.run_dir / ckpt.CURVES_FILE,
                    f"{self.run_dir.name}: preset {self.config.preset}",
                    emotion=self.config.model.emotion_classifier,
                )
        if self.distributed:
            dist.barrier()

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.is_main:
            with open(self.run_dir / ckpt.METRICS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ loop
    def _elapsed(self) -> float:
        return self.counters.elapsed_s + (time.perf_counter() - self.session_started)

    def _examples(self) -> int:
        done = self.counters.step - self.session_first_step
        return self.counters.examples + done * self.config.train.batch_size

    def _flush_window(self) -> None:
        stats = self._all_reduce(self.window.clone())
        values = dict(zip(STATS, stats.tolist()))
        tokens, examples = max(values["tokens"], 1.0), max(values["examples"], 1.0)
        elapsed = time.perf_counter() - self.window_started
        steps_done = self.counters.step - self.window_first_step
        self._log(
            self._without_absent_heads(
                {
                    "kind": "train",
                    "step": self.counters.step,
                    "epoch": self.counters.epoch,
                    "loss": values["loss"] / max(self.counters.window_steps, 1),
                    "generation_loss": values["generation_loss"] / tokens,
                    "generation_nll": values["generation_nll"] / tokens,
                    "ppl_pooled": math.exp(min(values["generation_nll"] / tokens, 50.0)),
                    "emotion_nll": values["emotion_nll"] / examples,
                    "emotion_accuracy": values["emotion_correct"] / examples,
                    "attention_loss": values["attention_loss"] / examples,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "examples_per_s": steps_done
                    * self.config.train.batch_size
                    / max(elapsed, 1e-9),
                }
            )
        )
        self.window.zero_()
        self.counters.window_steps = 0
        self.window_started = time.perf_counter()
        self.window_first_step = self.counters.step

    def _announce(self) -> None:
        """One line on stderr before the first step: preset, parameters by part, device."""
        import sys

        counts = self.model.parameter_counts()
        start = (
            f"resuming at step {self.counters.step:,}"
            if self.resumed_from is not None
            else "starting"
        )
        print(
            f"kemp-model train: preset {self.config.preset}, {counts['total']:,} parameters "
            f"(word table {counts['word_table']:,}, output layer {counts['output']:,}, other "
            f"{counts['other']:,}), {self.device} x {self.world_size}, {start}",
            file=sys.stderr,
            flush=True,
        )

    def _validate(self) -> tuple[dict[str, float], bool, bool]:
        """Validate (when the step calls for it): ``(record, is the best so far, stop now)``."""
        tc, c = self.config.train, self.counters
        if not len(self.valid_data):
            return {}, False, False
        record = self.evaluate()
        ppl = record["ppl_per_example"]
        self._log({"kind": "valid", "step": c.step, **record})
        if c.step < tc.early_stopping_from:
            return record, False, False
        if c.best_ppl is None or ppl < c.best_ppl:
            c.best_ppl, c.best_step, c.bad_evals = ppl, c.step, 0
            return record, True, False
        c.bad_evals += 1
        return record, False, tc.patience > 0 and c.bad_evals >= tc.patience

    def fit(self) -> TrainSummary:
        """Run until ``max_steps`` or early stopping; returns the summary (on every rank)."""
        tc, c = self.config.train, self.counters
        # a resumed run that had already stopped early stays stopped (unless --patience grew)
        stopped = tc.patience > 0 and c.bad_evals >= tc.patience
        last_valid: dict[str, float] = {}
        if self.is_main:
            self._announce()
        progress = (
            _progress_bar(tc.max_steps, c.step) if self.job.progress and self.is_main else None
        )
        try:
            while c.step < tc.max_steps and not stopped:
                self.sampler.set_epoch(c.epoch)
                plan = list(self.sampler)
                while c.position < len(plan) and c.step < tc.max_steps:
                    cpu_batch = self.train_data.collate(torch.from_numpy(plan[c.position]))
                    counts = self.counts(cpu_batch)
                    self.window += self.step(self._to_device(cpu_batch), counts)
                    c.window_steps += 1
                    c.position += 1
                    if c.step % tc.log_every == 0:
                        self._flush_window()
                    if progress is not None:
                        progress.advance(c.step, self.history[-1] if self.history else None)
                    if c.step - self.session_first_step == GUIDANCE_AFTER_STEPS and self.is_main:
                        self._guide(progress)
                    if c.step % tc.eval_every == 0 or c.step == tc.max_steps:
                        paused = time.perf_counter()
                        record, best, stopped = self._validate()
                        last_valid = record or last_valid
                        epoch_done = c.position >= len(plan)
                        if epoch_done:  # saved state points at the next epoch's first batch
                            c.epoch, c.position = c.epoch + 1, 0
                        self.save(best=best, final=c.step >= tc.max_steps or stopped)
                        pause = time.perf_counter() - paused
                        self.paused_s += pause
                        self.window_started += pause  # the bar's ex/s counts training only
                        if stopped or epoch_done:
                            break
                if c.position >= len(plan):
                    c.epoch, c.position = c.epoch + 1, 0
        finally:
            if progress is not None:
                progress.stop()
        training = time.perf_counter() - self.session_started - self.paused_s
        done = c.step - self.session_first_step
        return TrainSummary(
            run_dir=self.run_dir,
            steps=c.step,
            examples=self._examples(),
            elapsed_s=self._elapsed(),
            examples_per_s=done * tc.batch_size / max(training, 1e-9),
            best_perplexity=c.best_ppl,
            best_step=c.best_step,
            last_valid=last_valid,
            stopped_early=stopped,
            resumed_from=self.resumed_from,
            device=str(self.device),
            world_size=self.world_size,
            parameters=self.parameters,
            notes=self.notes,
            validation_s=self.paused_s,
        )

    def _guide(self, progress: _ProgressBar | None) -> None:
        """After the first steps, one guidance line if the schedule would take hours on a CPU."""
        seconds = (
            time.perf_counter() - self.session_started - self.paused_s
        ) / GUIDANCE_AFTER_STEPS
        line = cpu_guidance(
            str(self.device),
            self.config.preset,
            self.config.train.max_steps - self.counters.step,
            seconds,
        )
        if line is None:
            return
        self.notes.append(line)
        if progress is not None:
            progress.bar.console.print(f"[yellow]note:[/] {line}", highlight=False)
        else:
            import sys

            print(f"note: {line}", file=sys.stderr, flush=True)


def validation_metrics(out: ModelOutput, rows: int) -> Metrics:
    """The mergeable validation figures of one batch's forward pass."""
    examples = out.example_count.item()
    return Metrics(
        ppl_per_example=PerplexityMetric(
            out.example_mean_nll_sum.item(), out.scored_examples.item()
        ),
        ppl_pooled=PerplexityMetric(out.generation_nll_sum.item(), out.token_count.item()),
        emotion_accuracy=AverageMetric(out.emotion_correct.item(), examples),
        emotion_nll=AverageMetric(out.emotion_nll_sum.item(), examples),
        attention_loss=AverageMetric(out.attention_loss_sum.item(), rows),
    )


class _ProgressBar:
    """The rich progress bar of a training run (rank 0 only)."""

    def __init__(self, total: int, completed: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} ex/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.bar.start()
        self.task = self.bar.add_task(
            "train", total=total, completed=completed, loss="-", speed="-"
        )
        self.logged_step = -1

    def advance(self, step: int, last: dict[str, Any] | None) -> None:
        if last is not None and last.get("kind") == "train" and last["step"] != self.logged_step:
            self.logged_step = last["step"]
            self.bar.update(
                self.task,
                completed=step,
                loss=f"{last['loss']:.3f}",
                speed=f"{last['examples_per_s']:.0f}",
            )
        else:
            self.bar.update(self.task, completed=step)

    def stop(self) -> None:
        self.bar.stop()


def _progress_bar(total: int, completed: int) -> _ProgressBar:
    return _ProgressBar(total, completed)


def train(job: TrainJob, rank: int | None = None, world_size: int | None = None) -> TrainSummary:
    """Set up and run one training job (see :class:`TrainJob`); the CLI's one library call.

    The whole job holds :func:`kemp_kg.schema.output_lock` on the run folder (rank 0 only: the
    ranks of one job share it), so a second ``train`` into the same ``--out`` fails at once with
    :class:`kemp_kg.schema.OutputBusyError` (an ``OSError``: one line from the CLI) instead of
    interleaving checkpoints and ``metrics.jsonl`` with this one.
    """
    rank = rank if rank is not None else int(os.environ.get("RANK", 0))
    with schema.output_lock(job.out) if rank == 0 else nullcontext():
        return Trainer.setup(job, rank=rank, world_size=world_size).fit()


__all__ = [
    "Counters",
    "TrainJob",
    "TrainSummary",
    "Trainer",
    "noam_lr",
    "read_metrics",
    "train",
    "valid_perplexity",
    "validation_metrics",
]
