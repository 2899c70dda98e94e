"""Fixtures for kemp-model tests: tiny graph files built with `schema.write_graphs`."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from kemp_kg import schema

WORDS = (
    "i am so happy today my dog won a prize at the show that is great news you must be proud "
    "sad lost job yesterday sorry to hear hope you find another one soon scared of the dark "
    "night alone house noise what was it cat tree friend gift birthday party cake"
).split()
VOCAB = (*schema.SPECIAL_TOKENS, *sorted(set(WORDS)))
INDEX = {w: i for i, w in enumerate(VOCAB)}


def make_rows(
    count: int,
    *,
    seed: int = 0,
    split: str = "train",
    max_words: int = 12,
    max_concepts: int = 5,
    max_target: int = 8,
) -> list[dict]:
    """`count` random but well-formed graph rows (a learnable target: it echoes context words)."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, max_words))]
        ids = [schema.CLS_ID] + [INDEX[w] for w in words]
        roles = [int(schema.Role.CLS)] + [
            int(schema.Role.SPEAKER if i < len(words) // 2 + 1 else schema.Role.LISTENER)
            for i in range(len(words))
        ]
        num_concepts = rng.randint(0, max_concepts)
        anchors = [rng.randint(1, len(words)) for _ in range(num_concepts)]
        target = [rng.choice(ids[1:]) for _ in range(rng.randint(1, max_target))]
        rows.append(
            {
                "example_id": f"{split}-{n}",
                "conv_id": f"c{n}",
                "split": split,
                "emotion": n % len(schema.EMOTIONS),
                "history": [" ".join(words)],
                "target": " ".join(VOCAB[t] for t in target),
                "context_ids": ids,
                "context_roles": roles,
                "context_intensity": [0.0] + [rng.random() for _ in words],
                "concept_ids": [INDEX[rng.choice(WORDS)] for _ in anchors],
                "concept_anchor": anchors,
                "concept_relation": [rng.randrange(len(schema.RELATIONS)) for _ in anchors],
                "concept_weight": [rng.random() for _ in anchors],
                "concept_intensity": [rng.random() for _ in anchors],
                "target_ids": target,
            }
        )
    return rows


def write_rows(path: Path, rows: list[dict], *, vocab=VOCAB, chunk: int = 0) -> Path:
    tables = [pa.Table.from_pylist(rows, schema=schema.GRAPH_SCHEMA)]
    if chunk:
        tables = [
            pa.Table.from_pylist(rows[i : i + chunk], schema=schema.GRAPH_SCHEMA)
            for i in range(0, len(rows), chunk)
        ]
    return schema.write_graphs(path, tables, vocab=vocab, provenance={"test": True})


@pytest.fixture(scope="session")
def graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small file: 96 train rows, 24 valid rows, 16 test rows, in several record batches."""
    rows = (
        make_rows(96, seed=1)
        + make_rows(24, seed=2, split="valid")
        + make_rows(16, seed=3, split="test")
    )
    return write_rows(tmp_path_factory.mktemp("graphs") / "graphs.arrow", rows, chunk=40)


@pytest.fixture
def rows_factory():
    """`make_rows` as a fixture (tests build their own small files with it)."""
    return make_rows


@pytest.fixture
def rows_writer():
    """`write_rows` as a fixture."""
    return write_rows


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small models gain nothing from threads, and on a shared 2-core box OpenMP spinning slows
    every test down several-fold; subprocesses inherit OMP_NUM_THREADS=1 too."""
    import os

    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(previous)
