"""From a training request to a resolved run, in one pure step (no model, no writes).

``kemp-model train`` builds a :class:`TrainJob` from its flags; :func:`resolve_run` turns it into
a :class:`ResolvedRun`: the graph split to train on, the vocabulary, the complete
:class:`~kemp_model.checkpoint.RunConfig` (preset + overrides, or the stored run on ``--resume``),
the pre-trained vectors to load, and the notes to show the user. ``config.json`` is read once,
here. The :class:`~kemp_model.train.Trainer` builds the model from the result and never looks
at the flags again.

Rules on ``--resume``: the preset, the vocabulary, the model and the loss are the stored run's.
A flag that would change one of them (``--dropout``, ``--loss-reduction``, ...) is refused with
one line; only :data:`RESUMABLE_FIELDS` of the training config may change.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kemp_model import checkpoint as ckpt
from kemp_model.config import Preset, get_preset
from kemp_model.data import GraphDataset, load_split
from kemp_model.embeddings import Vectors
from kemp_model.errors import CheckpointError, KempModelError

#: TrainConfig fields that ``--resume`` may change (the rest must match the stored run).
RESUMABLE_FIELDS = frozenset(
    {"max_steps", "eval_every", "patience", "log_every", "eval_examples", "early_stopping_from"}
)

Overrides = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class TrainJob:
    """One training request (what the CLI builds from its flags).

    Attributes:
        graphs: graph file(s) or folder holding the train and validation splits.
        out: the run folder.
        preset: preset name (see :data:`kemp_model.config.PRESETS`); ``None`` means ``kemp``
            for a new run and the stored preset on ``resume``.
        model_overrides, train_overrides, loss_overrides: ``(field, value)`` pairs applied to
            the preset's :class:`~kemp_model.config.ModelConfig`,
            :class:`~kemp_model.config.TrainConfig` and :class:`~kemp_model.loss.LossConfig`.
        embeddings, embeddings_vocab: GloVe ``.txt`` or ``.npy`` (+ vocab) file, optional.
        embedding_placement: how vectors narrower than the word table fill it
            (:meth:`~kemp_model.embeddings.Vectors.placed`: ``orthonormal`` or ``prefix``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU threads for torch (``None``: torch's default; 1 is fastest on a busy box).
        resume: continue the run in ``out`` from ``last.state.safetensors``.
        force: start afresh in ``out`` even if it holds a run (its run files are replaced).
        progress: show a rich progress bar (rank 0 only).
    """

    graphs: tuple[Path, ...]
    out: Path
    preset: str | None = None
    model_overrides: Overrides = ()
    train_overrides: Overrides = ()
    loss_overrides: Overrides = ()
    embeddings: Path | None = None
    embeddings_vocab: Path | None = None
    embedding_placement: str = "orthonormal"
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True


@dataclass(frozen=True)
class ResolvedRun:
    """Everything the trainer needs, decided before anything is built or written.

    Attributes:
        config: the complete run configuration (what ``config.json`` holds).
        vocab: the graph file's vocabulary.
        train_data: the memory-mapped training split (checked byte by byte).
        vectors: pre-trained rows to copy into a NEW model's word table (``None`` on resume:
            the checkpoint has the trained table).
        resume: continue from the run folder's training state (False for a run that stopped
            before its first checkpoint: it starts again at step 0 with its stored config).
        notes: lines for the user (settings changed by the vectors, ...).
    """

    config: ckpt.RunConfig
    vocab: tuple[str, ...]
    train_data: GraphDataset
    vectors: Vectors | None
    resume: bool
    notes: tuple[str, ...] = ()


def apply_overrides(config: Any, overrides: Sequence[tuple[str, Any]]) -> Any:
    """``config`` with ``(field, value)`` pairs replaced; an unknown field is a ``ValueError``."""
    names = {f.name for f in dataclasses.fields(config)}
    for key, _ in overrides:
        if key not in names:
            raise ValueError(f"{type(config).__name__} has no field {key!r}")
    return dataclasses.replace(config, **dict(overrides)) if overrides else config


def _absolute(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    return tuple(os.path.abspath(p) for p in paths)


def _changed(
    stored: Any, overrides: Sequence[tuple[str, Any]], allowed: frozenset[str]
) -> list[str]:
    return sorted(
        f"{key} ({getattr(stored, key)!r} -> {value!r})"
        for key, value in overrides
        if key not in allowed and getattr(stored, key) != value
    )


def _resume_config(job: TrainJob, stored: ckpt.RunConfig, digest: str) -> ckpt.RunConfig:
    """The stored run with the allowed training changes; a refused change raises."""
    run_dir = Path(job.out)
    preset = get_preset(job.preset or stored.preset)
    if stored.preset != preset.name:
        raise CheckpointError(
            f"{run_dir}: run was trained with preset {stored.preset!r}, not {preset.name!r}; "
            f"rerun with --preset {stored.preset} or another --out"
        )
    if stored.vocab_sha256 != digest:
        raise CheckpointError(
            f"{run_dir}: run was trained on graphs with another vocabulary than "
            f"{job.graphs[0]}; resume with the original graph file or use another --out"
        )
    refused = (
        _changed(stored.model, job.model_overrides, frozenset())
        + _changed(stored.loss, job.loss_overrides, frozenset())
        + _changed(stored.train, job.train_overrides, RESUMABLE_FIELDS)
    )
    if refused:
        raise CheckpointError(
            f"{run_dir}: --resume cannot change {', '.join(refused)}; drop the flag(s), or "
            "start a new run with another --out"
        )
    allowed = {k: v for k, v in job.train_overrides if k in RESUMABLE_FIELDS}
    config = ckpt.replace_train(stored, **allowed)
    if not config.graphs:  # a run from before graphs were recorded: record them now
        config = dataclasses.replace(config, graphs=_absolute(job.graphs))
    return config


def _load_vectors(
    job: TrainJob,
    preset: Preset,
    model_overrides: Mapping[str, Any],
    vocab: Sequence[str],
    seed: int,
) -> tuple[Vectors, dict[str, Any], list[str], int]:
    """The vectors for a new run's table: ``(vectors, record, notes, table width)``."""
    from kemp_model.embeddings import load_vectors

    assert job.embeddings is not None
    vectors = load_vectors(job.embeddings, vocab, job.embeddings_vocab)
    source_dim = vectors.dim
    notes = []
    width = int(model_overrides.get("embedding_dim", preset.model.embedding_dim))
    name = Path(job.embeddings).name
    if width > source_dim or "embedding_dim" in model_overrides:
        if width != source_dim:  # narrower vectors into the preset's (or the asked) width
            vectors = vectors.placed(width, job.embedding_placement, seed=seed)
            notes.append(
                f"{name} ({source_dim}d) placed in a {width}-wide table ({job.embedding_placement})"
            )
    elif width != source_dim:  # wider vectors than the preset's table: the table takes them
        notes.append(f"embedding_dim set to {source_dim} by {name}")
    record = {
        "path": str(job.embeddings),
        "dim": source_dim,
        "table_dim": vectors.dim,
        "placement": job.embedding_placement if vectors.dim != source_dim else None,
        "coverage": round(vectors.coverage, 4),
    }
    return vectors, record, notes, vectors.dim


def _stored_vectors(job: TrainJob, config: ckpt.RunConfig, vocab: Sequence[str]) -> Vectors:
    """The vectors a run recorded (``config.embeddings``), placed in its table as before."""
    from kemp_model.embeddings import load_vectors

    record = dict(config.embeddings or {})
    vectors = load_vectors(job.embeddings or record["path"], vocab, job.embeddings_vocab)
    if vectors.dim != record.get("table_dim", vectors.dim):
        placement = record.get("placement") or job.embedding_placement
        vectors = vectors.placed(int(record["table_dim"]), placement, seed=config.train.seed)
    return vectors


def resolve_run(job: TrainJob) -> ResolvedRun:
    """Resolve ``job`` (see the module docstring).

    Raises:
        KempModelError / CheckpointError: a run folder in the way (no ``--force``), nothing to
            resume, a refused change on resume, a split too small for one batch.
        kemp_kg.schema.GraphFileError: an unreadable graph file.
        ValueError: an override naming no config field or holding an invalid value.
    """
    run_dir = Path(job.out)
    if job.resume and job.force:
        raise KempModelError("--resume and --force exclude each other; pass one of them")
    stored: ckpt.RunConfig | None = None
    # A run stopped before its first checkpoint (killed, Ctrl-C, out of memory, full disk) holds
    # its config.json and nothing to lose: --resume starts it again at step 0 with its stored
    # settings, and a plain rerun may start it afresh. A run with a checkpoint needs one of them.
    checkpointed = (run_dir / ckpt.STATE_FILE).is_file()
    if job.resume:
        if not checkpointed and not (run_dir / ckpt.CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{run_dir}: nothing to resume (no {ckpt.STATE_FILE}, no {ckpt.CONFIG_FILE}); "
                "start the run without --resume"
            )
        stored, _ = ckpt.read_run_config(run_dir)
    elif not job.force and any(
        (run_dir / name).is_file() for name in (ckpt.STATE_FILE, ckpt.LAST_FILE, ckpt.BEST_FILE)
    ):
        raise KempModelError(
            f"{run_dir}: already holds a run; pass --resume to continue it, --force to replace "
            "it, or choose another --out"
        )
    preset = get_preset(job.preset or (stored.preset if stored else "kemp"))
    train_config = stored.train if stored else apply_overrides(preset.train, job.train_overrides)
    # verify: a full offset check of the file (damaged bytes give a GraphFileError, not a crash)
    train_data, vocab, provenance = load_split(job.graphs, train_config.train_split, verify=True)
    digest = ckpt.vocab_checksum(vocab)
    notes: list[str] = []
    vectors = None
    if stored is not None:
        config = _resume_config(job, stored, digest)
        if not checkpointed:
            notes.append("no checkpoint yet: the run started again at step 0 with its settings")
            if config.embeddings:  # a new model: its word table gets the run's vectors again
                vectors = _stored_vectors(job, config, vocab)
    else:
        model_overrides = dict(job.model_overrides)
        model_config = apply_overrides(preset.model, job.model_overrides)
        loss_config = apply_overrides(preset.loss, job.loss_overrides)
        embeddings = None
        if job.embeddings is not None:
            vectors, embeddings, notes, width = _load_vectors(
                job, preset, model_overrides, vocab, train_config.seed
            )
            model_config = dataclasses.replace(model_config, embedding_dim=width)
        config = ckpt.RunConfig(
            preset=preset.name,
            model=model_config,
            train=train_config,
            loss=loss_config,
            vocab_size=len(vocab),
            vocab_sha256=digest,
            provenance=dict(provenance),
            embeddings=embeddings,
            graphs=_absolute(job.graphs),
        )
    tc = config.train
    if len(train_data) == 0:
        from kemp_model.evaluate import split_counts

        raise KempModelError(
            f"{job.graphs[0]}: split {tc.train_split!r} has no rows (it holds "
            f'{split_counts(train_data.graphs)}); give the dialogues a "split": '
            f'"{tc.train_split}" (or enrich them with --split {tc.train_split})'
        )
    if len(train_data) < tc.batch_size and stored is None:
        # a handful of conversations: a batch cannot hold more examples than the split has
        notes.append(
            f"batch size lowered from {tc.batch_size} to {len(train_data)}: the "
            f"{tc.train_split!r} split has only {len(train_data)} "
            f"example{'s' if len(train_data) > 1 else ''}"
        )
        config = ckpt.replace_train(config, batch_size=len(train_data))
    elif len(train_data) < tc.batch_size:
        raise KempModelError(
            f"{job.graphs[0]}: split {tc.train_split!r} has {len(train_data)} rows, fewer than "
            f"the run's batch of {tc.batch_size}; resume with the graph file it was trained on"
        )
    return ResolvedRun(
        config=config,
        vocab=tuple(vocab),
        train_data=train_data,
        vectors=vectors,
        resume=stored is not None and checkpointed,
        notes=tuple(notes),
    )


__all__ = ["RESUMABLE_FIELDS", "ResolvedRun", "TrainJob", "apply_overrides", "resolve_run"]
