"""Evaluate a trained run on a split, and generate responses in batches.

One pass over the split, in length-sorted batches, computes per batch:

* the teacher-forced loss terms (``model(batch)``): the unsmoothed NLL of the reference
  responses under the copy-mixed distribution, per example and pooled (the two perplexities of
  docs/DESIGN.md §7), and the emotion predictions (accuracy);
* a decoded response (:func:`kemp_model.decoding.generate`) with the chosen decoding.

The results are merged as :class:`~kemp_model.metrics.Metrics`, the responses scored with
:func:`~kemp_model.score.score_records` (Distinct-1/2, BLEU, repetition), and written
atomically under ``runs/NAME/eval/``:

* ``{split}-{decode}.metrics.json``: every figure, the decoding configuration, counts, timing;
* ``{split}-{decode}.predictions.txt``: the official KEMP Emotion/Context/Concept/Pred/Ref
  blocks (``kemp-model score`` reads them back; so does the official ``cal_metrics.py``).

References are the target token ids mapped through the vocabulary (the same tokenisation as the
predictions, as in the official files), so BLEU compares like with like.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kemp_kg import schema
from kemp_model import checkpoint as ckpt
from kemp_model.data import Batch, GraphDataset, load_split
from kemp_model.decoding import DecodeConfig, generate
from kemp_model.device import resolve_device
from kemp_model.errors import CheckpointError, KempModelError
from kemp_model.metrics import AverageMetric, Metrics, PerplexityMetric, SumMetric
from kemp_model.score import PredictionRecord, concepts_by_word, score_records, write_predictions

__all__ = [
    "EvalConfig",
    "EvalResult",
    "GenerateConfig",
    "LoadedRun",
    "Prediction",
    "evaluate_run",
    "generate_run",
    "ids_to_text",
    "load_inference_run",
    "predict",
]

#: Special tokens never shown in text (UNK stays visible as ``<unk>``).
_HIDDEN = {schema.PAD_ID, schema.SOS_ID, schema.EOS_ID}


def ids_to_text(ids: Sequence[int], vocab: Sequence[str]) -> str:
    """Token ids -> space-joined tokens, without PAD/SOS/EOS (stops at the first EOS)."""
    words = []
    for token in ids:
        token = int(token)
        if token == schema.EOS_ID:
            break
        if token in _HIDDEN:
            continue
        words.append(vocab[token] if 0 <= token < len(vocab) else schema.SPECIAL_TOKENS[1])
    return " ".join(words)


# --------------------------------------------------------------------------------------------
# Loading a run
# --------------------------------------------------------------------------------------------


class IndexMismatchWarning(UserWarning):
    """Graphs (or a chat index) built with another knowledge index than the run's training
    graphs: the concepts differ from those the model learned with. The CLI prints it as one
    ``warning:`` line."""


@dataclass(frozen=True)
class LoadedRun:
    """A trained model ready for inference, with what it was trained on.

    Attributes:
        model: the network, in eval mode, on ``device``.
        vocab: the run's vocabulary.
        run_dir: the run folder.
        preset: the preset name recorded in the run.
        graphs: the graph file(s) the run was trained on, as recorded in ``config.json``
            (``"graphs"``; empty for older runs; the files may no longer exist).
        provenance: the graph provenance recorded in the run (what chat's GraphBuilder needs).
        device: where the model lives.
    """

    model: torch.nn.Module
    vocab: tuple[str, ...]
    run_dir: Path
    preset: str
    graphs: tuple[Path, ...]
    provenance: Mapping[str, Any]
    device: torch.device


def load_inference_run(run_dir: str | os.PathLike[str], device: str = "auto") -> LoadedRun:
    """Load ``runs/NAME`` (best weights) for evaluation, generation or chat.

    Raises:
        CheckpointError: no such run, or a run without weights/config (one line, what to rerun).
    """
    run_dir = Path(run_dir)
    if not (run_dir / ckpt.CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{run_dir}: not a run folder (no {ckpt.CONFIG_FILE}); train one with `kemp-model train`"
        )
    torch_device = resolve_device(device)
    model, run_config, vocab = ckpt.load_run(run_dir, torch_device)
    model.eval()
    return LoadedRun(
        model=model,
        vocab=tuple(vocab),
        run_dir=run_dir,
        preset=str(run_config.preset),
        graphs=tuple(Path(p) for p in run_config.graphs),  # config.json's "graphs"
        provenance=dict(run_config.provenance),
        device=torch_device,
    )


def _describe_index(info: Mapping[str, Any]) -> str:
    source = info.get("source") if isinstance(info.get("source"), Mapping) else {}
    checksum = schema.index_checksum(info) or "?"
    return f"{source.get('kind', '?')} {source.get('path', '?')} (index checksum {checksum[:12]})"


def index_mismatch(
    recorded: Mapping[str, Any] | None, actual: Mapping[str, Any] | None
) -> str | None:
    """How the knowledge index ``actual`` (a manifest or a graph file's ``provenance["index"]``)
    differs from the one a run was trained with (``recorded``, its graphs' ``provenance["index"]``),
    or ``None`` when they are the same or either is unknown (compared by
    :func:`kemp_kg.schema.index_checksum`)."""
    want, got = schema.index_checksum(recorded), schema.index_checksum(actual)
    if want is None or got is None or want == got:
        return None
    assert recorded is not None and actual is not None
    return (
        f"built from {_describe_index(actual)}, but the run was trained with graphs built from "
        f"{_describe_index(recorded)}"
    )


def _open_split(
    run: LoadedRun, graphs: Sequence[str | os.PathLike[str]] | None, split: str
) -> GraphDataset:
    paths = list(graphs) if graphs else list(run.graphs)
    if not paths:
        raise KempModelError(
            f"{run.run_dir}: {ckpt.CONFIG_FILE} records no graph file; pass --graphs FILE"
        )
    dataset, vocab, provenance = load_split(paths, split, verify=True)  # damaged bytes: one line
    mismatch = index_mismatch(run.provenance.get("index"), provenance.get("index"))
    if mismatch and not graphs:  # the recorded file was re-enriched with another index
        raise KempModelError(
            f"{paths[0]}: its knowledge index changed since training: {mismatch}; re-enrich it "
            "with the run's index, or pass --graphs FILE to evaluate on another file knowingly"
        )
    if mismatch:
        warnings.warn(f"{paths[0]}: {mismatch}", IndexMismatchWarning, stacklevel=2)
    if tuple(vocab) != run.vocab:
        raise KempModelError(
            f"{paths[0]}: vocabulary differs from {run.run_dir / 'vocab.json'} "
            f"({len(vocab)} vs {len(run.vocab)} tokens); enrich with the run's vocabulary"
        )
    if len(dataset) == 0:
        raise KempModelError(
            f"{paths[0]}: split {split!r} has no rows; it holds {split_counts(dataset.graphs)}: "
            "pass one of those as --split"
        )
    return dataset


def split_counts(graphs: schema.GraphFile) -> str:
    """``train (120), valid (20), test (20)``: the splits a graph file holds, with row counts."""
    import pyarrow.compute as pc

    counts = {
        str(item["values"]): int(item["counts"])
        for item in pc.value_counts(graphs.table.column("split")).to_pylist()
    }
    order = sorted(
        counts, key=lambda name: (schema.SPLITS.index(name) if name in schema.SPLITS else 99, name)
    )
    return ", ".join(f"{name} ({counts[name]:,})" for name in order) or "no rows at all"


# --------------------------------------------------------------------------------------------
# The shared pass: teacher-forced figures + decoding, batch by batch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """One example's outputs.

    Attributes:
        row: dataset row number.
        example_id: the row's ``example_id``.
        history: the dialogue turns (text as stored in the graph file).
        emotion: gold emotion name (``"unknown"`` when unlabelled).
        emotion_top: the three most likely emotions with probabilities.
        concepts: ``(word, concept)`` pairs injected into the graph (none for models that do
            not use knowledge, ``wo-ece`` and ``transformer``).
        response: generated text.
        reference: the reference response (target ids mapped through the vocabulary).
    """

    row: int
    example_id: str
    history: tuple[str, ...]
    emotion: str
    emotion_top: tuple[tuple[str, float], ...]
    concepts: tuple[tuple[str, str], ...]
    response: str
    reference: str

    def as_record(self) -> PredictionRecord:
        """The official-format block of this prediction."""
        return PredictionRecord(
            emotion=self.emotion,
            context=self.history,
            concepts=concepts_by_word(self.concepts),
            pred=self.response,
            ref=self.reference,
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (one line of ``generate --out``)."""
        return {
            "example_id": self.example_id,
            "history": list(self.history),
            "emotion": self.emotion,
            "emotion_predicted": [{"emotion": e, "probability": p} for e, p in self.emotion_top],
            "concepts": [{"word": w, "concept": c} for w, c in self.concepts],
            "response": self.response,
            "reference": self.reference,
        }


def _emotion_name(label: int) -> str:
    return schema.EMOTIONS[label] if 0 <= label < len(schema.EMOTIONS) else "unknown"


def emotion_top(logits: torch.Tensor, k: int = 3) -> list[list[tuple[str, float]]]:
    """Top-``k`` emotions with softmax probabilities per row. ``logits`` ``[B, 32]``."""
    probs = torch.softmax(logits.float(), dim=-1)
    values, index = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [
        [(schema.EMOTIONS[i], float(p)) for p, i in zip(vs, ix)]
        for vs, ix in zip(values.tolist(), index.tolist())
    ]


def batch_concepts(batch: Batch, vocab: Sequence[str]) -> list[list[tuple[str, str]]]:
    """``(anchor word, concept)`` pairs of every row of ``batch``, in concept order."""
    out = []
    ids, concepts = batch.context_ids.tolist(), batch.concept_ids.tolist()
    anchors, mask = batch.concept_anchor.tolist(), batch.concept_mask.tolist()
    for r in range(len(batch)):
        out.append(
            [
                (vocab[ids[r][a]], vocab[c])
                for c, a, real in zip(concepts[r], anchors[r], mask[r])
                if real and 0 <= a < len(ids[r])
            ]
        )
    return out


def _length_sorted_batches(
    dataset: GraphDataset, rows: Sequence[int], size: int
) -> list[list[int]]:
    sizes = dataset.sizes()
    ordered = sorted(rows, key=lambda r: (-int(sizes[r]), r))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def predict(
    model: torch.nn.Module,
    dataset: GraphDataset,
    decode: DecodeConfig,
    *,
    rows: Sequence[int] | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    teacher_forced: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[Prediction], Metrics]:
    """Decode every row (in dataset order on return) and gather the teacher-forced metrics.

    Args:
        model: a KEMP model (``forward``/``encode``/``decode_step``).
        dataset: the split to run on.
        decode: the decoding configuration.
        rows: dataset rows to use (default: all).
        batch_size: rows per batch (batches are length-sorted to limit padding).
        device: where to run.
        teacher_forced: also compute perplexity / accuracy (needs reference targets).
        on_batch: called with the number of rows after each batch (progress).

    Returns:
        ``(predictions, metrics)``; metrics hold ``ppl_per_example`` (the paper's: exp of the
        mean over examples of each example's mean token NLL) and ``ppl_pooled`` (exp of the mean
        NLL over all reference tokens), both with EOS and ``<unk>`` counted and no smoothing, ``emotion_acc`` (only when the model has an
        emotion classifier and labels exist), ``examples`` and ``tokens``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    vocab = dataset.vocab
    rows = list(range(len(dataset))) if rows is None else [int(r) for r in rows]
    model_config = getattr(model, "config", None)
    classifier = bool(getattr(model_config, "emotion_classifier", True))
    knowledge = bool(getattr(model_config, "use_knowledge", True))  # wo-ece/transformer: none
    was_training = model.training
    model.eval()
    metrics = Metrics()
    found: dict[int, Prediction] = {}
    try:
        for chunk in _length_sorted_batches(dataset, rows, batch_size):
            cpu_batch = dataset.collate(chunk)
            batch = cpu_batch.to(device)
            with torch.no_grad():
                if teacher_forced:
                    output = model(batch)
                    metrics += Metrics(
                        ppl_per_example=PerplexityMetric(
                            output.example_mean_nll_sum, output.scored_examples
                        ),
                        ppl_pooled=PerplexityMetric(output.generation_nll_sum, output.token_count),
                        tokens=SumMetric(output.token_count),
                    )
                    logits = output.emotion_logits
                else:
                    logits = model.encode(batch).emotion_logits
                labelled = cpu_batch.emotion >= 0
                if classifier and bool(labelled.any()):
                    predicted = logits.argmax(-1).cpu()
                    correct = ((predicted == cpu_batch.emotion) & labelled).sum()
                    metrics += Metrics(emotion_acc=AverageMetric(correct, labelled.sum()))
                responses = generate(model, batch, decode)
            metrics += Metrics(examples=SumMetric(len(chunk)))
            tops = emotion_top(logits.cpu()) if classifier else [[] for _ in chunk]
            concepts = batch_concepts(cpu_batch, vocab) if knowledge else [[] for _ in chunk]
            targets = cpu_batch.target.tolist()
            for i, row in enumerate(chunk):
                text = dataset.text(row)
                found[row] = Prediction(
                    row=row,
                    example_id=str(text["example_id"]),
                    history=tuple(text["history"]),
                    emotion=_emotion_name(int(cpu_batch.emotion[i])),
                    emotion_top=tuple(tops[i]),
                    concepts=tuple(concepts[i]),
                    response=ids_to_text(responses[i], vocab),
                    reference=ids_to_text(targets[i], vocab),
                )
            if on_batch is not None:
                on_batch(len(chunk))
    finally:
        if was_training:
            model.train()
    return [found[r] for r in rows], metrics


# --------------------------------------------------------------------------------------------
# evaluate / generate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """What ``kemp-model evaluate`` does.

    Attributes:
        run_dir: the run folder.
        graphs: graph file(s); empty = the file recorded in the run's config.
        split: the split to evaluate.
        decode: the decoding configuration.
        decode_name: its preset name (used in the output file names).
        limit: evaluate only the first ``limit`` rows of the split (``None`` = all).
        batch_size: rows per batch.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        out_dir: output folder (default ``run_dir/eval``).
    """

    run_dir: Path
    graphs: tuple[Path, ...] = ()
    split: str = "test"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    decode_name: str = "greedy"
    limit: int | None = None
    batch_size: int = 32
    device: str = "auto"
    out_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class EvalResult:
    """What an evaluation wrote. ``metrics`` is the JSON object of ``metrics_path``."""

    metrics: Mapping[str, Any]
    metrics_path: Path
    predictions_path: Path


def _rows(dataset: GraphDataset, limit: int | None) -> list[int]:
    count = len(dataset) if limit is None else min(limit, len(dataset))
    return list(range(count))


def _predict_split(
    config: EvalConfig | GenerateConfig,
    progress: Callable[[int], Callable[[int], None]] | None,
    *,
    teacher_forced: bool,
) -> tuple[LoadedRun, GraphDataset, list[Prediction], Metrics]:
    """Load the run, open the split, and decode its first ``config.limit`` rows."""
    run = load_inference_run(config.run_dir, config.device)
    dataset = _open_split(run, config.graphs, config.split)
    rows = _rows(dataset, config.limit)
    predictions, metrics = predict(
        run.model,
        dataset,
        config.decode,
        rows=rows,
        batch_size=config.batch_size,
        device=run.device,
        teacher_forced=teacher_forced,
        on_batch=progress(len(rows)) if progress is not None else None,
    )
    return run, dataset, predictions, metrics


def evaluate_run(
    config: EvalConfig, *, progress: Callable[[int], Callable[[int], None]] | None = None
) -> EvalResult:
    """Evaluate a run on a split and write metrics JSON + official-format predictions.

    Args:
        config: see :class:`EvalConfig`.
        progress: optional ``progress(total)`` -> callback taking a number of rows done.

    Raises:
        CheckpointError / KempModelError / GraphFileError: bad run folder, graph file or split.
    """
    started = time.perf_counter()
    run, dataset, predictions, metrics = _predict_split(config, progress, teacher_forced=True)
    values = metrics.value()
    report = score_records([p.response for p in predictions], [p.reference for p in predictions])
    figures = report.as_dict()
    accuracy = values.get("emotion_acc")
    result: dict[str, Any] = {
        "run": str(config.run_dir),
        "preset": run.preset,
        "graphs": [str(p) for p in dataset.graphs.paths],
        "split": config.split,
        "examples": len(predictions),
        "emotion_accuracy": None if accuracy is None or math.isnan(accuracy) else accuracy,
        "perplexity_per_example": values["ppl_per_example"],
        "perplexity_pooled": values["ppl_pooled"],
        "reference_tokens": int(values["tokens"]),
        "distinct_1": figures["distinct_1"],
        "distinct_2": figures["distinct_2"],
        **{f"bleu_{n}": figures[f"bleu_{n}"] for n in range(1, 5)},
        "bleu_smoothed": figures["bleu_smoothed"],
        "mean_length": figures["mean_length"],
        "unique_responses": figures["unique_responses"],
        "top_response_share": figures["top_response_share"],
        "top_responses": figures["top_responses"],
        "decode_preset": config.decode_name,
        "decode": config.decode.to_dict(),
        "device": str(run.device),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out_dir = config.out_dir or config.run_dir / ckpt.EVAL_DIR
    metrics_path, predictions_path = ckpt.eval_paths(out_dir, config.split, config.decode_name)
    write_predictions(predictions_path, [p.as_record() for p in predictions])
    ckpt.write_json(metrics_path, result, then="run `kemp-model evaluate` again")
    return EvalResult(metrics=result, metrics_path=metrics_path, predictions_path=predictions_path)


@dataclass(frozen=True)
class GenerateConfig:
    """What ``kemp-model generate`` does (see :class:`EvalConfig` for the shared fields).

    Attributes:
        out: JSONL output file (one prediction per line), or ``None`` to only return them.
    """

    run_dir: Path
    graphs: tuple[Path, ...] = ()
    split: str = "test"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    limit: int | None = None
    batch_size: int = 32
    device: str = "auto"
    out: Path | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


def generate_run(
    config: GenerateConfig, *, progress: Callable[[int], Callable[[int], None]] | None = None
) -> list[Prediction]:
    """Generate responses for (the first ``limit`` rows of) a split; write JSONL if ``out``.

    Works on unlabelled rows too (no teacher-forced figures are computed).
    """
    _, _, predictions, _ = _predict_split(config, progress, teacher_forced=False)
    if config.out is not None:
        with schema.atomic_path(config.out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            for prediction in predictions:
                handle.write(json.dumps(prediction.as_json(), ensure_ascii=False) + "\n")
    return predictions
