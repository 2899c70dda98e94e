"""The naive training-data path that `bench_train.py` compares against (the official code's way).

What the official KEMP/MoEL code does, in miniature: the whole preprocessed corpus is one JSON
blob loaded into Python lists before training; a batch is chosen at random without grouping by
length; `collate` loops over examples in Python, padding lists and building tensors row by row.
The model and optimiser are the same as ours, so the difference measured is the data path
(and the padding that missing length-bucketing adds to every step).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from kemp_kg import schema
from kemp_model.data import Batch

LIST_FIELDS = (
    "context_ids",
    "context_roles",
    "context_intensity",
    "concept_ids",
    "concept_anchor",
    "concept_relation",
    "concept_weight",
    "concept_intensity",
    "target_ids",
)


def export_json(graphs: Path, out: Path, split: str = "train") -> Path:
    """Dump one split of a graph file as a JSON list of row dicts (the naive loader's input)."""
    table = schema.open_graphs(graphs).split(split).select(["emotion", *LIST_FIELDS])
    out.parent.mkdir(parents=True, exist_ok=True)
    with schema.atomic_path(out) as tmp:
        tmp.write_text(json.dumps(table.to_pylist()))
    return out


def load_json(path: Path) -> list[dict]:
    """The whole corpus in RAM as Python objects."""
    return json.loads(Path(path).read_text())


def _pad(rows: list[list], value) -> list[list]:
    width = max((len(r) for r in rows), default=0)
    return [r + [value] * (width - len(r)) for r in rows]


def collate(examples: list[dict]) -> Batch:
    """Per-example Python collate into the same :class:`Batch` the model takes."""

    def column(name, value, dtype):
        return torch.tensor(_pad([list(e[name]) for e in examples], value), dtype=dtype)

    targets = [list(e["target_ids"]) + [schema.EOS_ID] for e in examples]
    context_ids = column("context_ids", schema.PAD_ID, torch.long)
    concept_ids = column("concept_ids", schema.PAD_ID, torch.long)
    context_mask = torch.tensor(_pad([[True] * len(e["context_ids"]) for e in examples], False))
    concept_mask = torch.tensor(
        _pad([[True] * len(e["concept_ids"]) for e in examples], False), dtype=torch.bool
    ).reshape(len(examples), -1)
    return Batch(
        context_ids=context_ids,
        context_roles=column("context_roles", int(schema.Role.KNOWLEDGE), torch.long),
        context_intensity=column("context_intensity", 0.0, torch.float32),
        context_mask=context_mask,
        concept_ids=concept_ids.reshape(len(examples), -1),
        concept_anchor=column("concept_anchor", 0, torch.long).reshape(len(examples), -1),
        concept_relation=column("concept_relation", 0, torch.long).reshape(len(examples), -1),
        concept_weight=column("concept_weight", 0.0, torch.float32).reshape(len(examples), -1),
        concept_intensity=column("concept_intensity", 0.0, torch.float32).reshape(
            len(examples), -1
        ),
        concept_mask=concept_mask,
        target=torch.tensor(_pad(targets, schema.PAD_ID), dtype=torch.long),
        emotion=torch.tensor([e["emotion"] for e in examples], dtype=torch.long),
        rows=torch.arange(len(examples)),
    )


def batches(corpus: list[dict], batch_size: int, seed: int = 0):
    """Random batches, no length grouping (a shuffled list cut in order)."""
    order = list(range(len(corpus)))
    random.Random(seed).shuffle(order)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        yield collate([corpus[i] for i in order[start : start + batch_size]])
