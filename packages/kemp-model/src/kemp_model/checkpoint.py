"""The run folder: configs as JSON, weights and training state as safetensors (no pickle).

``runs/NAME/`` holds:

* ``config.json``: preset, resolved :class:`~kemp_model.config.ModelConfig` and
  :class:`~kemp_model.config.TrainConfig`, the graph file(s) trained on (``"graphs"``: absolute
  paths; evaluate/generate/chat use them when no ``--graphs`` is given), graph provenance,
  vocabulary size and SHA-256, embeddings used;
* ``vocab.json``: the vocabulary (token strings by id);
* ``best.safetensors`` / ``last.safetensors``: model weights (metadata: step, preset, vocab hash);
* ``last.state.safetensors``: everything ``--resume`` needs in ONE atomically written file:
  model weights, optimizer state, RNG states of every rank, and (in the safetensors metadata) a
  JSON object with the step, sampler position, early-stopping state and log window;
* ``metrics.jsonl`` and ``curves.png``.

Every file is written to a temporary name in the folder, fsynced and renamed
(:func:`kemp_kg.schema.atomic_path`), so a ``kill -9`` leaves either the previous or the new file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from kemp_kg.schema import atomic_path
from kemp_model.config import (
    ModelConfig,
    TrainConfig,
    loss_config_from_dict,
    model_config_from_dict,
    split_legacy_model_dict,
    to_dict,
    train_config_from_dict,
)
from kemp_model.errors import CheckpointError
from kemp_model.loss import LossConfig

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
BEST_FILE = "best.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "last.state.safetensors"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
#: Folder of a run where ``kemp-model evaluate`` writes (see :func:`eval_paths`).
EVAL_DIR = "eval"
#: Every file train writes into a run folder.
RUN_FILES = (CONFIG_FILE, VOCAB_FILE, BEST_FILE, LAST_FILE, STATE_FILE, METRICS_FILE, CURVES_FILE)
FORMAT = "kemp-run/1"
_STATE_KEY = "kemp.state"


def vocab_checksum(vocab: Sequence[str]) -> str:
    """SHA-256 of the vocabulary as a JSON list (what ties a run to its graph files)."""
    return hashlib.sha256(json.dumps(list(vocab), ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of a run, as stored in ``config.json``.

    ``graphs`` are the absolute paths of the graph file(s) (or folder) the run was trained on,
    stored as the top-level ``"graphs"`` list; empty for runs written before it was recorded.
    ``loss`` is stored as ``"loss"``; runs written before it existed kept its fields in
    ``"model"`` (``emotion_loss_reduction`` for ``reduction``) and still load.
    """

    preset: str
    model: ModelConfig
    train: TrainConfig
    vocab_size: int
    vocab_sha256: str
    provenance: Mapping[str, Any] = field(default_factory=dict)
    embeddings: Mapping[str, Any] | None = None
    graphs: tuple[str, ...] = ()
    loss: LossConfig = field(default_factory=LossConfig)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "preset": self.preset,
            "model": to_dict(self.model),
            "train": to_dict(self.train),
            "loss": to_dict(self.loss),
            "vocab_size": self.vocab_size,
            "vocab_sha256": self.vocab_sha256,
            "graphs": list(self.graphs),
            "provenance": dict(self.provenance),
            "embeddings": dict(self.embeddings) if self.embeddings else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        graphs = data.get("graphs") or []
        if not isinstance(graphs, list) or not all(isinstance(p, str) for p in graphs):
            raise ValueError(f"'graphs' must be a list of paths, got {graphs!r}")
        model, legacy_loss = split_legacy_model_dict(data["model"])
        return cls(
            preset=data["preset"],
            model=model_config_from_dict(model),
            train=train_config_from_dict(data["train"]),
            loss=loss_config_from_dict({**legacy_loss, **(data.get("loss") or {})}),
            vocab_size=int(data["vocab_size"]),
            vocab_sha256=data["vocab_sha256"],
            provenance=data.get("provenance") or {},
            embeddings=data.get("embeddings"),
            graphs=tuple(graphs),
        )


def _write_failed(path: Path, exc: BaseException, then: str | None = None) -> CheckpointError:
    """The one-line error for a run file that could not be written (full disk, permissions);
    ``then`` is what to rerun (default: resume the training run of ``path``'s folder)."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:  # safetensors reports I/O errors as SafetensorError("... No space left on device ...")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    then = then or "continue: the same `kemp-model train` command with --resume"
    return CheckpointError(
        f"{path}: cannot write ({reason}); the previous file is kept; free space or fix "
        f"permissions, then {then}"
    )


@contextlib.contextmanager
def _writing(path: Path, then: str | None = None) -> Iterator[Path]:
    """:func:`atomic_path` whose write failures become one-line :class:`CheckpointError`."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except (SafetensorError, OSError) as exc:
        raise _write_failed(path, exc, then) from None


def write_json(path: Path, data: Any, then: str | None = None) -> None:
    """``data`` as indented JSON, atomically; a failed write is a one-line :class:`CheckpointError`
    that leaves the previous file and says what to rerun (``then``; default: resume training)."""
    with _writing(path, then) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_run_config(run_dir: Path, config: RunConfig, vocab: Sequence[str]) -> None:
    """Write ``vocab.json`` and ``config.json`` atomically."""
    write_json(run_dir / VOCAB_FILE, list(vocab))
    write_json(run_dir / CONFIG_FILE, config.to_json())


def read_run_config(run_dir: str | Path) -> tuple[RunConfig, tuple[str, ...]]:
    """Read ``config.json`` and ``vocab.json`` of a run folder.

    Raises:
        CheckpointError: a missing folder or file, unreadable JSON, or a vocabulary that does
            not match its recorded checksum.
    """
    run_dir = Path(run_dir)
    config_path, vocab_path = run_dir / CONFIG_FILE, run_dir / VOCAB_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"{run_dir}: no {CONFIG_FILE}; train a model there with `kemp-model train --out {run_dir}`"
        )
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        config = RunConfig.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{config_path}: unreadable run config ({exc}); retrain with `kemp-model train`"
        ) from None
    if not vocab_path.is_file():
        raise CheckpointError(
            f"{vocab_path}: vocabulary missing; retrain with `kemp-model train --out {run_dir}`"
        )
    try:
        vocab = tuple(json.loads(vocab_path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise CheckpointError(f"{vocab_path}: unreadable vocabulary ({exc})") from None
    if vocab_checksum(vocab) != config.vocab_sha256:
        raise CheckpointError(
            f"{vocab_path}: does not match the checksum in {CONFIG_FILE}; the run folder was edited"
        )
    return config, vocab


def is_run_folder(path: Path) -> bool:
    """True when ``path`` holds a run's ``config.json`` (a folder ``train`` may resume or, with
    ``--force``, replace); any other non-empty folder is the user's and is refused."""
    return (Path(path) / CONFIG_FILE).is_file()


def saved_step(run_dir: str | Path) -> int | None:
    """The step of the run's resumable checkpoint (``last.state.safetensors``), None if none."""
    path = Path(run_dir) / STATE_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[_STATE_KEY])
        return int(meta["extra"]["step"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError):
        return None


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}


def save_weights(path: Path, model: torch.nn.Module, metadata: Mapping[str, str]) -> None:
    """Model weights as safetensors, atomically. Raises :class:`CheckpointError` if unwritable."""
    with _writing(path) as tmp:
        save_file(_weights(model), str(tmp), metadata=dict(metadata))


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint missing; train with `kemp-model train --out {path.parent}`"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: corrupt checkpoint ({str(exc).splitlines()[0]}); resume from another or retrain"
        ) from None


def _load_model_tensors(
    path: Path, model: torch.nn.Module, tensors: Mapping[str, torch.Tensor]
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        what = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape of {wrong[0]} {tuple(tensors[wrong[0]].shape)} != {tuple(expected[wrong[0]].shape)}"
        )
        raise CheckpointError(
            f"{path}: weights do not fit this model ({what}); it is from another preset or vocabulary"
        )
    model.load_state_dict(dict(tensors), strict=True)


def load_weights(path: str | Path, model: torch.nn.Module) -> dict[str, str]:
    """Load a weights file into ``model``; returns its metadata. Raises :class:`CheckpointError`."""
    path = Path(path)
    tensors, metadata = _read_tensors(path)
    _load_model_tensors(path, model, tensors)
    return metadata


def save_training_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_states: Sequence[torch.Tensor],
    extra: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write everything ``--resume`` needs into one safetensors file, atomically.

    Args:
        rng_states: one uint8 tensor per rank (torch CPU generator state, then CUDA's if any).
        extra: JSON-serialisable counters (step, sampler position, early stopping, ...).
        tensors: further named tensors (e.g. the log-window accumulator).

    Raises:
        CheckpointError: the file cannot be written (full disk, permissions); the previous
            file is left as it was.
    """
    out: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in _weights(model).items()}
    optim = optimizer.state_dict()
    for index, state in optim["state"].items():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            out[f"optim/{index}/{key}"] = value.detach().contiguous().cpu()
    for rank, state in enumerate(rng_states):
        out[f"rng/{rank}"] = state.contiguous().cpu()
    for key, value in (tensors or {}).items():
        out[f"extra/{key}"] = value.detach().contiguous().cpu()
    meta = {
        "extra": dict(extra),
        "param_groups": optim["param_groups"],
        "ranks": len(rng_states),
    }
    with _writing(path) as tmp:
        save_file(out, str(tmp), metadata={_STATE_KEY: json.dumps(meta)})


@dataclass
class TrainingState:
    """What :func:`load_training_state` returns besides filling the model and optimizer."""

    extra: dict[str, Any]
    rng_states: list[torch.Tensor]
    tensors: dict[str, torch.Tensor]


def load_training_state(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> TrainingState:
    """Restore model and optimizer from ``last.state.safetensors``. Raises :class:`CheckpointError`."""
    path = Path(path)
    tensors, metadata = _read_tensors(path)
    if _STATE_KEY not in metadata:
        raise CheckpointError(f"{path}: not a kemp training state; resume needs {STATE_FILE}")
    try:
        meta = json.loads(metadata[_STATE_KEY])
        rng = [tensors[f"rng/{r}"] for r in range(int(meta["ranks"]))]
        groups = meta["param_groups"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: damaged training state ({exc!r}); resume from another or retrain"
        ) from None
    _load_model_tensors(
        path, model, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit ({exc}); retrain") from None
    extra_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("extra/")}
    return TrainingState(extra=meta["extra"], rng_states=rng, tensors=extra_tensors)


def read_training_counters(run_dir: str | Path) -> dict[str, Any] | None:
    """The JSON counters of a run's training state without loading any tensor: ``step``,
    ``best_step``, ``best_ppl``, ``bad_evals`` (validations since the best), ``elapsed_s`` (the
    trainer's own clock over every session) and the rest of :class:`kemp_model.train.Counters`.
    ``None`` when ``last.state.safetensors`` is absent or unreadable (a damaged file is reported
    by ``--resume``, not here)."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        extra = json.loads(metadata[_STATE_KEY])["extra"]
    except (SafetensorError, OSError, ValueError, KeyError, TypeError):
        return None
    return dict(extra) if isinstance(extra, dict) else None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", which: str = "best"):
    """Load a trained model for inference.

    Args:
        run_dir: the run folder written by ``kemp-model train``.
        device: where to put the model.
        which: ``"best"`` (falls back to ``"last"`` when there is no best yet) or ``"last"``.

    Returns:
        ``(model, config, vocab)``: a :class:`~kemp_model.model.KEMP` in eval mode, the
        :class:`RunConfig` and the vocabulary tuple.

    Raises:
        CheckpointError: missing/corrupt files, or weights that do not fit the recorded config.
    """
    from kemp_model.model import KEMP

    run_dir = Path(run_dir)
    config, vocab = read_run_config(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    path = run_dir / (BEST_FILE if which == "best" else LAST_FILE)
    if which == "best" and not path.is_file():
        path = run_dir / LAST_FILE
    model = KEMP(config.model, len(vocab))
    metadata = load_weights(path, model)
    if metadata.get("vocab_sha256", config.vocab_sha256) != config.vocab_sha256:
        raise CheckpointError(
            f"{path}: weights belong to another vocabulary than {run_dir / CONFIG_FILE}"
        )
    return model.to(device).eval(), config, vocab


def replace_train(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy of ``config`` with TrainConfig fields changed."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


def eval_paths(out_dir: str | Path, split: str, decode: str) -> tuple[Path, Path]:
    """``(metrics JSON, predictions file)`` of an evaluation of ``split`` with decoding
    ``decode`` written into ``out_dir`` (by default ``RUN/eval``, :data:`EVAL_DIR`)."""
    stem = f"{split}-{decode}"
    out_dir = Path(out_dir)
    return out_dir / f"{stem}.metrics.json", out_dir / f"{stem}.predictions.txt"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL file written line by line; a line cut by ``kill -9`` (the last
    one, usually) is skipped. A missing file has no records; a ``.gz`` path is read through
    gzip (the committed run records of ``scripts/run_records.py``)."""
    path = Path(path)
    if not path.is_file():
        return []
    if path.suffix == ".gz":
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (see :func:`read_jsonl`), or of the
    ``metrics.jsonl.gz`` a run record keeps instead."""
    path = Path(run_dir) / METRICS_FILE
    packed = path.with_name(METRICS_FILE + ".gz")
    return read_jsonl(packed if not path.exists() and packed.exists() else path)
