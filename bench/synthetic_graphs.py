"""Write a synthetic graph file with EmpatheticDialogues-like sizes (for benchmarks only).

Lengths follow the real WordNet-enriched ED file (`kemp-kg enrich`, preset paper): history words
mean ~36 (CLS included, 95th percentile ~80, max ~370), 10 concepts per example at most (mean
~9.9), targets mean ~13.5 tokens (95th percentile ~28), vocabulary ~19.6k, 40,252 / 5,736 /
5,257 train / valid / test rows. Built vectorised with numpy and written through
`kemp_kg.schema.write_graphs`, so it is a valid graph file.

    .venv/bin/python bench/synthetic_graphs.py work/scratch/bench_train/synthetic.arrow
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa

from kemp_kg import schema

SPLITS = {"train": 40_252, "valid": 5_736, "test": 5_257}


def _list(lengths: np.ndarray, values: np.ndarray, arrow_type: pa.DataType) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=arrow_type))


def _table(split: str, rows: int, vocab_size: int, rng: np.random.Generator) -> pa.Table:
    words = np.clip(np.rint(rng.lognormal(3.4, 0.55, rows)), 2, 370).astype(np.int64)  # CLS + n
    concepts = np.minimum(rng.poisson(14, rows), 10)
    targets = np.clip(np.rint(rng.lognormal(2.45, 0.5, rows)), 1, 115).astype(np.int64)
    zipf = lambda n: np.minimum(rng.zipf(1.3, n) + len(schema.SPECIAL_TOKENS) - 1, vocab_size - 1)  # noqa: E731
    ctx = zipf(int(words.sum())).astype(np.int32)
    starts = np.cumsum(words) - words
    ctx[starts] = schema.CLS_ID
    roles = np.full(int(words.sum()), int(schema.Role.SPEAKER), dtype=np.int8)
    roles[starts] = int(schema.Role.CLS)
    position = np.arange(int(words.sum())) - np.repeat(starts, words)
    roles[(position > np.repeat(words, words) // 2)] = int(schema.Role.LISTENER)
    anchors = (rng.random(int(concepts.sum())) * np.repeat(words - 1, concepts)).astype(
        np.int32
    ) + 1
    total_c = int(concepts.sum())
    table = {
        "example_id": pa.array([f"{split}-{i}" for i in range(rows)]),
        "conv_id": pa.array([f"conv-{i // 3}" for i in range(rows)]),
        "split": pa.array([split] * rows),
        "emotion": pa.array(rng.integers(0, len(schema.EMOTIONS), rows), type=pa.int8()),
        "history": pa.array([["synthetic"]] * rows, type=pa.list_(pa.string())),
        "target": pa.array(["synthetic"] * rows),
        "context_ids": _list(words, ctx, pa.int32()),
        "context_roles": _list(words, roles, pa.int8()),
        "context_intensity": _list(
            words, rng.random(int(words.sum())).astype(np.float32), pa.float32()
        ),
        "concept_ids": _list(concepts, zipf(total_c).astype(np.int32), pa.int32()),
        "concept_anchor": _list(concepts, anchors, pa.int32()),
        "concept_relation": _list(
            concepts, rng.integers(0, len(schema.RELATIONS), total_c).astype(np.int8), pa.int8()
        ),
        "concept_weight": _list(concepts, rng.random(total_c).astype(np.float32), pa.float32()),
        "concept_intensity": _list(concepts, rng.random(total_c).astype(np.float32), pa.float32()),
        "target_ids": _list(targets, zipf(int(targets.sum())).astype(np.int32), pa.int32()),
    }
    return pa.table(table)


def write(path: Path, *, vocab_size: int = 19_622, scale: float = 1.0, seed: int = 0) -> Path:
    """Write the synthetic file (``scale`` multiplies the row counts)."""
    rng = np.random.default_rng(seed)
    vocab = (
        *schema.SPECIAL_TOKENS,
        *(f"w{i}" for i in range(vocab_size - len(schema.SPECIAL_TOKENS))),
    )
    tables = [_table(split, max(int(n * scale), 1), vocab_size, rng) for split, n in SPLITS.items()]
    batches = [t.slice(i, 4096) for t in tables for i in range(0, t.num_rows, 4096)]
    return schema.write_graphs(
        path, batches, vocab=vocab, provenance={"synthetic": True, "seed": seed}
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.path, scale=args.scale, seed=args.seed))


if __name__ == "__main__":
    main()
