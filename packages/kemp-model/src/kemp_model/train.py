"""The training recipe (torchtune style): ``setup``, ``loss_step``, ``evaluate``, ``save``, ``fit``.

One process or many: under ``torchrun`` (``WORLD_SIZE`` > 1) the recipe joins a process group
(gloo on CPU, NCCL on GPU), wraps the model in DistributedDataParallel, and every rank takes its
slice of each GLOBAL batch (``TrainConfig.batch_size``). Losses are normalised by the global token
and example counts, so N ranks compute the same update as one process with the whole batch.

Resume is bit-exact: ``last.state.safetensors`` holds weights, Adam moments, every rank's RNG
state, the sampler position (epoch, batch within the epoch), the partial log window and the
early-stopping counters; the batch order is a pure function of ``(seed, epoch)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from kemp_kg import schema
from kemp_model import checkpoint as ckpt
from kemp_model.config import ModelConfig, TrainConfig, get_preset
from kemp_model.data import Batch, BatchSampler, GraphDataset, load_split
from kemp_model.errors import CheckpointError, KempModelError
from kemp_model.metrics import AverageMetric, Metrics, PerplexityMetric
from kemp_model.model import KEMP, ModelOutput

#: TrainConfig fields that ``--resume`` may change (the rest must match the stored run).
RESUMABLE_FIELDS = frozenset({"max_steps", "eval_every", "patience", "log_every", "eval_examples"})
#: Seconds between curve plots during training (the final save always plots).
PLOT_EVERY_S = 300.0
#: Order of the per-step statistics vector.
STATS = ("generation_loss", "generation_nll", "emotion_nll", "attention_loss", "tokens",
         "examples", "emotion_correct", "loss")  # fmt: skip


@dataclass(frozen=True)
class TrainJob:
    """One training request (what the CLI builds from its flags).

    Attributes:
        graphs: graph file(s) or folder holding the train and validation splits.
        out: the run folder.
        preset: preset name (see :data:`kemp_model.config.PRESETS`); ``None`` means ``kemp``
            for a new run and the stored preset on ``resume``.
        model_overrides, train_overrides: ``(field, value)`` pairs applied to the preset.
        embeddings, embeddings_vocab: GloVe ``.txt`` or ``.npy`` (+ vocab) file, optional.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU threads for torch (``None``: torch's default; 1 is fastest on a busy box).
        resume: continue the run in ``out`` from ``last.state.safetensors``.
        force: start afresh in ``out`` even if it holds a run (its run files are replaced).
        progress: show a rich progress bar (rank 0 only).
    """

    graphs: tuple[Path, ...]
    out: Path
    preset: str | None = None
    model_overrides: tuple[tuple[str, Any], ...] = ()
    train_overrides: tuple[tuple[str, Any], ...] = ()
    embeddings: Path | None = None
    embeddings_vocab: Path | None = None
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True


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


def noam_lr(step: int, hidden_dim: int, warmup: int, factor: float) -> float:
    """The Transformer schedule: ``factor * d^-0.5 * min(step^-0.5, step * warmup^-1.5)``."""
    step = max(step, 1)
    return factor * hidden_dim**-0.5 * min(step**-0.5, step * warmup**-1.5)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; under torchrun CUDA uses ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise KempModelError("--device cuda: no CUDA device visible to torch; use --device cpu")
        if name == "cuda":
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    elif name != "cpu":
        raise KempModelError(f"--device {name}: use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def _apply(config: Any, overrides: Sequence[tuple[str, Any]]) -> Any:
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides:
        if key not in names:
            raise ValueError(f"{type(config).__name__} has no field {key!r}")
        changes[key] = value
    return dataclasses.replace(config, **changes) if changes else config


def plot_curves(records: Sequence[dict[str, Any]], out: Path, title: str, emotion: bool = True) -> None:
    """Training curves as a PNG (atomically): train loss and token NLL; valid perplexity and,
    when the model has an emotion head (``emotion``), valid emotion accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train" and "loss" in r]
    valid = [r for r in records if r.get("kind") == "valid" and "ppl" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss (Eq. 21)")
    left.plot([r["step"] for r in train], [r["generation_nll"] for r in train], label="train token NLL")
    left.set_xlabel("step")
    left.legend()
    if valid:
        right.plot([r["step"] for r in valid], [r["ppl"] for r in valid], "o-", label="valid perplexity")
        handles = right.get_legend_handles_labels()[0]
        if emotion and all("emotion_accuracy" in r for r in valid):
            twin = right.twinx()
            twin.plot([r["step"] for r in valid], [r["emotion_accuracy"] for r in valid], "s--",
                      color="tab:orange", label="valid emotion accuracy")  # fmt: skip
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


def _absolute(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The paths as absolute strings (what ``config.json`` records as ``"graphs"``)."""
    return tuple(os.path.abspath(p) for p in paths)


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
    """The recipe. Call :meth:`setup` then :meth:`fit` (``train`` below does both)."""

    def __init__(self, job: TrainJob, rank: int | None = None, world_size: int | None = None) -> None:
        self.job = job
        self.rank = rank if rank is not None else int(os.environ.get("RANK", 0))
        self.world_size = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", 1))
        self.notes: list[str] = []

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        job = self.job
        self.device = resolve_device(job.device)
        if job.threads:
            torch.set_num_threads(job.threads)
        self.distributed = self.world_size > 1
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, rank=self.rank, world_size=self.world_size)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.is_main = self.rank == 0
        self.run_dir = Path(job.out)

        # verify: a full offset check of the file (damaged bytes give a GraphFileError, not a crash)
        self.train_data, vocab, provenance = load_split(
            job.graphs, self._train_config_guess().train_split, verify=True
        )
        self.vocab = vocab
        run_config = self._resolve_config(vocab, provenance)
        self.config = run_config
        if self.distributed:  # every rank has checked the run folder before rank 0 writes to it
            dist.barrier()
        tc = run_config.train
        if len(self.train_data) < tc.batch_size:
            raise KempModelError(
                f"{job.graphs[0]}: split {tc.train_split!r} has {len(self.train_data)} rows, fewer than "
                f"one batch of {tc.batch_size}; rerun `kemp-kg enrich` or lower --batch-size"
            )
        self.valid_data = GraphDataset(self.train_data.graphs, tc.valid_split)
        if len(self.valid_data) == 0:
            self.notes.append(f"no {tc.valid_split!r} rows: no validation, no early stopping")
        if tc.batch_size % self.world_size:
            raise KempModelError(
                f"--batch-size {tc.batch_size} is not divisible by {self.world_size} processes"
            )

        torch.manual_seed(tc.seed)
        model = KEMP(run_config.model, len(vocab))
        if run_config.embeddings and not job.resume:
            vectors = self._vectors
            model.load_vectors(vectors.table, vectors.present)
        self.model = model.to(self.device)
        self.parameters = sum(p.numel() for p in model.parameters())
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=0.0, betas=tc.adam_betas, eps=tc.adam_eps
        )
        # counters (restored on resume)
        self.step = 0
        self.epoch = 0
        self.position = 0  # batches of the current epoch already consumed
        self.best_ppl: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.window = torch.zeros(len(STATS), dtype=torch.float64, device=self.device)
        self.window_steps = 0
        self.history: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        self.elapsed_before = 0.0
        self.examples_before = 0
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if job.resume:
            self._restore()
        elif self.is_main:
            for name in ckpt.RUN_FILES:  # --force: the previous run's files go
                (self.run_dir / name).unlink(missing_ok=True)
            ckpt.write_run_config(self.run_dir, run_config, vocab)

        self.use_bf16 = tc.bf16 and self.device.type == "cuda"
        if tc.bf16 and not self.use_bf16:
            self.notes.append("--bf16 ignored on CPU")
        self.net: torch.nn.Module = self.model
        if tc.compile:  # per layer: see KEMP.compile_layers (the first steps wait for it)
            self.model.compile_layers()
        if self.distributed:
            unused = not run_config.model.emotion_classifier
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=unused,
            )
        self.sampler = BatchSampler(
            self.train_data.sizes(), batch_size=tc.batch_size, seed=tc.seed, epoch=self.epoch,
            bucket_batches=tc.bucket_batches, rank=self.rank, world_size=self.world_size,
        )  # fmt: skip

    def _train_config_guess(self) -> TrainConfig:
        # split names are needed before the run config is resolved (resume keeps the stored ones)
        if self.job.resume and (Path(self.job.out) / ckpt.CONFIG_FILE).is_file():
            return ckpt.read_run_config(self.job.out)[0].train
        return _apply(get_preset(self.job.preset or "kemp").train, self.job.train_overrides)

    def _resolve_config(self, vocab: Sequence[str], provenance: Mapping[str, Any]) -> ckpt.RunConfig:
        job = self.job
        if job.resume and job.force:
            raise KempModelError("--resume and --force exclude each other; pass one of them")
        digest = ckpt.vocab_checksum(vocab)
        state_path = self.run_dir / ckpt.STATE_FILE
        if job.resume:
            if not state_path.is_file():
                raise CheckpointError(
                    f"{state_path}: nothing to resume; start the run without --resume"
                )
            stored, _ = ckpt.read_run_config(self.run_dir)
            preset = get_preset(job.preset or stored.preset)
            if stored.preset != preset.name:
                raise CheckpointError(
                    f"{self.run_dir}: run was trained with preset {stored.preset!r}, not "
                    f"{preset.name!r}; rerun with --preset {stored.preset} or another --out"
                )
            if stored.vocab_sha256 != digest:
                raise CheckpointError(
                    f"{self.run_dir}: run was trained on graphs with another vocabulary than "
                    f"{job.graphs[0]}; resume with the original graph file or use another --out"
                )
            changes = dict(job.train_overrides)
            bad = sorted(k for k, v in changes.items() if k not in RESUMABLE_FIELDS and getattr(stored.train, k) != v)
            if bad:
                raise CheckpointError(
                    f"{self.run_dir}: --resume cannot change {', '.join(bad)}; drop the flag(s) or use another --out"
                )
            if not stored.graphs:  # a run from before graphs were recorded: record them now
                stored = dataclasses.replace(stored, graphs=_absolute(job.graphs))
                if self.is_main:
                    ckpt.write_run_config(self.run_dir, stored, vocab)
            # a resumed run keeps the graph files it recorded (the same vocabulary was checked)
            return ckpt.replace_train(stored, **{k: v for k, v in changes.items() if k in RESUMABLE_FIELDS})
        preset = get_preset(job.preset or "kemp")
        if (state_path.is_file() or (self.run_dir / ckpt.CONFIG_FILE).is_file()) and not job.force:
            raise KempModelError(
                f"{self.run_dir}: already holds a run; pass --resume to continue it, --force to replace it, or choose another --out"
            )
        model_config: ModelConfig = _apply(preset.model, job.model_overrides)
        train_config: TrainConfig = _apply(preset.train, job.train_overrides)
        embeddings = None
        if job.embeddings is not None:
            from kemp_model.embeddings import load_vectors

            self._vectors = load_vectors(job.embeddings, vocab, job.embeddings_vocab)
            source_dim = self._vectors.dim
            requested = dict(job.model_overrides).get("embedding_dim")
            if requested is not None and requested != source_dim:
                self._vectors = self._vectors.widened(int(requested), seed=train_config.seed)
                self.notes.append(
                    f"{Path(job.embeddings).name} ({source_dim}d) placed in a {requested}-wide table"
                )
            elif self._vectors.dim != model_config.embedding_dim:
                self.notes.append(
                    f"embedding_dim set to {self._vectors.dim} by {Path(job.embeddings).name}"
                )
                model_config = dataclasses.replace(model_config, embedding_dim=self._vectors.dim)
            embeddings = {
                "path": str(job.embeddings),
                "dim": source_dim,
                "table_dim": self._vectors.dim,
                "coverage": round(self._vectors.coverage, 4),
            }
        return ckpt.RunConfig(
            preset=preset.name, model=model_config, train=train_config, vocab_size=len(vocab),
            vocab_sha256=digest, provenance=dict(provenance), embeddings=embeddings,
            graphs=_absolute(job.graphs),
        )  # fmt: skip

    def _restore(self) -> None:
        state = ckpt.load_training_state(self.run_dir / ckpt.STATE_FILE, self.model, self.optimizer)
        extra = state.extra
        self.step = int(extra["step"])
        self.epoch = int(extra["epoch"])
        self.position = int(extra["position"])
        self.best_ppl = extra.get("best_ppl")
        self.best_step = extra.get("best_step")
        self.bad_evals = int(extra.get("bad_evals", 0))
        self.window_steps = int(extra.get("window_steps", 0))
        self.elapsed_before = float(extra.get("elapsed_s", 0.0))
        self.examples_before = int(extra.get("examples", 0))
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
        self.resumed_from = self.step
        # metrics.jsonl: keep what the restored state had logged (a killed run may have written more)
        path = self.run_dir / ckpt.METRICS_FILE
        kept: list[dict[str, Any]] = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by kill -9
                if record.get("step", 0) <= self.step:
                    kept.append(record)
        self.history = kept
        if self.is_main:
            with ckpt.atomic_path(path) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

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
        examples = (int((batch.emotion >= 0).sum()) if self.config.model.emotion_classifier
                    else len(batch))  # fmt: skip
        counts = torch.tensor([batch.token_count, examples], dtype=torch.float64)
        return self._all_reduce(counts).clamp(min=1)

    def loss_step(self, batch: Batch, counts: torch.Tensor | None = None) -> torch.Tensor:
        """One optimiser step on this rank's slice of a global batch.

        Returns the detached statistics vector (:data:`STATS`) on the device (no sync).
        """
        tc = self.config.train
        self.net.train()
        if counts is None:
            counts = self.counts(batch)
        with self._autocast():
            out: ModelOutput = self.net(batch)
        loss = out.total(float(counts[0]), float(counts[1]))
        (loss * self.world_size).backward()  # DDP averages gradients over ranks
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        lr = noam_lr(self.step + 1, self.config.model.hidden_dim, tc.warmup_steps, tc.noam_factor)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return torch.stack([
            out.generation_loss_sum.detach(), out.generation_nll_sum, out.emotion_nll_sum.detach(),
            out.attention_loss_sum.detach(), out.token_count, out.example_count,
            out.emotion_correct, loss.detach(),
        ]).double()  # fmt: skip

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation perplexity (exp mean token NLL, no smoothing), emotion accuracy and losses."""
        tc = self.config.train
        self.model.eval()
        sizes = self.valid_data.sizes()
        if tc.eval_examples:
            sizes = sizes[: tc.eval_examples]
        per_rank = max(tc.batch_size // self.world_size, 1) * 4
        sampler = BatchSampler(
            sizes, batch_size=per_rank * self.world_size, shuffle=False, bucket_batches=10**9,
            rank=self.rank, world_size=self.world_size, drop_last=False,
        )  # fmt: skip
        total = Metrics(
            ppl=PerplexityMetric(0, 0), emotion_accuracy=AverageMetric(0, 0),
            emotion_nll=AverageMetric(0, 0), attention_loss=AverageMetric(0, 0),
        )  # fmt: skip
        for rows in sampler:
            if len(rows) == 0:
                continue
            batch = self._to_device(self.valid_data.collate(torch.from_numpy(rows)))
            with self._autocast():
                out = self.model(batch)
            examples = out.example_count.item()
            total += Metrics(
                ppl=PerplexityMetric(out.generation_nll_sum.item(), out.token_count.item()),
                emotion_accuracy=AverageMetric(out.emotion_correct.item(), examples),
                emotion_nll=AverageMetric(out.emotion_nll_sum.item(), examples),
                attention_loss=AverageMetric(out.attention_loss_sum.item(), len(batch)),
            )  # fmt: skip
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
            gathered = [torch.empty_like(rng, device=backend_device) for _ in range(self.world_size)]
            dist.all_gather(gathered, rng.to(backend_device))
            rng_states = [g.cpu() for g in gathered]
        else:
            rng_states = [rng]
        if self.is_main:
            metadata = {"step": str(self.step), "preset": self.config.preset,
                        "vocab_sha256": self.config.vocab_sha256}  # fmt: skip
            extra = {
                "step": self.step, "epoch": self.epoch, "position": self.position,
                "best_ppl": self.best_ppl, "best_step": self.best_step, "bad_evals": self.bad_evals,
                "window_steps": self.window_steps, "elapsed_s": self._elapsed(),
                "examples": self._examples(), "preset": self.config.preset,
                "vocab_sha256": self.config.vocab_sha256,
            }  # fmt: skip
            ckpt.save_training_state(
                self.run_dir / ckpt.STATE_FILE, self.model, self.optimizer, rng_states, extra,
                tensors={"window": self.window},
            )
            ckpt.save_weights(self.run_dir / ckpt.LAST_FILE, self.model, metadata)
            if best:
                ckpt.save_weights(self.run_dir / ckpt.BEST_FILE, self.model, metadata)
            if final or time.perf_counter() - self.plotted_at > PLOT_EVERY_S:
                self._plot()
        if self.distributed:
            dist.barrier()

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.is_main:
            with open(self.run_dir / ckpt.METRICS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def _plot(self) -> None:
        self.plotted_at = time.perf_counter()
        plot_curves(self.history, self.run_dir / ckpt.CURVES_FILE,
                    f"{self.run_dir.name}: preset {self.config.preset}",
                    emotion=self.config.model.emotion_classifier)

    # ------------------------------------------------------------------ loop
    def _elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.started)

    def _examples(self) -> int:
        return self.examples_before + (self.step - (self.resumed_from or 0)) * self.config.train.batch_size

    def _flush_window(self) -> None:
        stats = self._all_reduce(self.window.clone())
        values = dict(zip(STATS, stats.tolist()))
        tokens, examples = max(values["tokens"], 1.0), max(values["examples"], 1.0)
        elapsed = time.perf_counter() - self.window_started
        steps_done = self.step - self.window_first_step
        self._log(self._without_absent_heads({
            "kind": "train", "step": self.step, "epoch": self.epoch,
            "loss": values["loss"] / max(self.window_steps, 1),
            "generation_loss": values["generation_loss"] / tokens,
            "generation_nll": values["generation_nll"] / tokens,
            "ppl": math.exp(min(values["generation_nll"] / tokens, 50.0)),
            "emotion_nll": values["emotion_nll"] / examples,
            "emotion_accuracy": values["emotion_correct"] / examples,
            "attention_loss": values["attention_loss"] / examples,
            "lr": self.optimizer.param_groups[0]["lr"],
            "examples_per_s": steps_done * self.config.train.batch_size / max(elapsed, 1e-9),
        }))  # fmt: skip
        self.window.zero_()
        self.window_steps = 0
        self.window_started = time.perf_counter()
        self.window_first_step = self.step

    def fit(self) -> TrainSummary:
        """Run until ``max_steps`` or early stopping; returns the summary (on every rank)."""
        tc = self.config.train
        self.started = time.perf_counter()
        self.plotted_at = self.started
        self.window_started = self.started
        self.window_first_step = self.step
        # a resumed run that had already stopped early stays stopped (unless --patience grew)
        stopped = tc.patience > 0 and self.bad_evals >= tc.patience
        last_valid: dict[str, float] = {}
        progress = None
        task = None
        if self.job.progress and self.is_main:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)  # fmt: skip

            progress = Progress(
                TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} ex/s"),
                TimeElapsedColumn(), TimeRemainingColumn(),
            )  # fmt: skip
            progress.start()
            task = progress.add_task("train", total=tc.max_steps, completed=self.step, loss="-", speed="-")
        try:
            while self.step < tc.max_steps and not stopped:
                self.sampler.set_epoch(self.epoch)
                plan = list(self.sampler)
                while self.position < len(plan) and self.step < tc.max_steps:
                    cpu_batch = self.train_data.collate(torch.from_numpy(plan[self.position]))
                    counts = self.counts(cpu_batch)
                    self.window += self.loss_step(self._to_device(cpu_batch), counts)
                    self.window_steps += 1
                    self.position += 1
                    if self.step % tc.log_every == 0:
                        self._flush_window()
                        if progress is not None:
                            last = self.history[-1]
                            progress.update(task, completed=self.step, loss=f"{last['loss']:.3f}",
                                            speed=f"{last['examples_per_s']:.0f}")  # fmt: skip
                    elif progress is not None:
                        progress.update(task, completed=self.step)
                    if self.step % tc.eval_every == 0 or self.step == tc.max_steps:
                        best = False
                        if len(self.valid_data):
                            last_valid = self.evaluate()
                            ppl = last_valid["ppl"]
                            self._log({"kind": "valid", "step": self.step, **last_valid})
                            if self.best_ppl is None or ppl < self.best_ppl:
                                self.best_ppl, self.best_step, self.bad_evals, best = ppl, self.step, 0, True
                            else:
                                self.bad_evals += 1
                                stopped = tc.patience > 0 and self.bad_evals >= tc.patience
                        epoch_done = self.position >= len(plan)
                        if epoch_done:  # saved state points at the next epoch's first batch
                            self.epoch, self.position = self.epoch + 1, 0
                        self.save(best=best, final=self.step >= tc.max_steps or stopped)
                        if stopped or epoch_done:
                            break
                if self.position >= len(plan):
                    self.epoch, self.position = self.epoch + 1, 0
        finally:
            if progress is not None:
                progress.stop()
        elapsed = time.perf_counter() - self.started
        done = self.step - (self.resumed_from or 0)
        return TrainSummary(
            run_dir=self.run_dir, steps=self.step, examples=self._examples(), elapsed_s=self._elapsed(),
            examples_per_s=done * tc.batch_size / max(elapsed, 1e-9), best_perplexity=self.best_ppl,
            best_step=self.best_step, last_valid=last_valid, stopped_early=stopped,
            resumed_from=self.resumed_from, device=str(self.device), world_size=self.world_size,
            parameters=self.parameters, notes=self.notes,
        )  # fmt: skip


def train(job: TrainJob, rank: int | None = None, world_size: int | None = None) -> TrainSummary:
    """Set up and run one training job (see :class:`TrainJob`); the CLI's one library call.

    The whole job holds :func:`kemp_kg.schema.output_lock` on the run folder (rank 0 only: the
    ranks of one job share it), so a second ``train`` into the same ``--out`` fails at once with
    :class:`kemp_kg.schema.OutputBusyError` (an ``OSError``: one line from the CLI) instead of
    interleaving checkpoints and ``metrics.jsonl`` with this one.
    """
    trainer = Trainer(job, rank=rank, world_size=world_size)
    with schema.output_lock(job.out) if trainer.rank == 0 else nullcontext():
        trainer.setup()
        return trainer.fit()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (a torn last line is skipped)."""
    out = []
    path = Path(run_dir) / ckpt.METRICS_FILE
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


__all__ = ["TrainJob", "TrainSummary", "Trainer", "noam_lr", "read_metrics", "train"]
