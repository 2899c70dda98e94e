"""Would polars beat what kemp-kg uses for its tabular stages? Measured on EmpatheticDialogues.

Three stages where a dataframe library is the obvious candidate, each timed both ways on the same
input in the same run (best of ``--repeats``, alternating, CPU seconds beside wall clock):

1. ``ingest``: all ED conversations from ``ed_conversations.jsonl`` to one row per turn
   (conv_id, split, text). Ours: :func:`kemp_kg.dialogues.read_dialogues` (which also validates
   every record and reports bad ones by file and line); polars: ``read_ndjson`` + ``explode``
   (no validation at all, so this favours polars).
2. ``dedup``: every turn text to a dense id in first-appearance order, as enrich's text pool
   does before running the text pipeline once per distinct utterance. Ours: a dict (what
   :class:`kemp_kg.enrich.TextPool` does); polars: ``unique(maintain_order=True)`` + a join.
3. ``vocab``: token counts weighted by how many turns carry each text, from the tokens as an
   Arrow list array (what :func:`kemp_kg.enrich.count_tokens` gets from the text pipeline).
   Ours: Arrow dictionary encoding + ``np.bincount``; polars: ``group_by(token).sum(weight)``.
   Tokens here come from ``str.split`` (the same array feeds both sides).

Each side's result is checked equal to the other's. Results: ``bench/results/polars.json``.

    .venv/bin/python bench/bench_polars.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from _paths import repo_relative  # bench/ is sys.path[0] when run as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("KEMP_SHARED", REPO.parent / "shared"))
DEFAULT_INPUT = SHARED / "data" / "ed" / "ed_conversations.jsonl"
RESULTS = HERE / "results" / "polars.json"


def timed(fn: Callable[[], object], repeats: int) -> tuple[object, dict[str, object]]:
    """Run ``fn`` ``repeats`` times; its last result and the best wall / CPU seconds."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, {
        "best_wall_s": round(min(walls), 4),
        "best_cpu_s": round(min(cpus), 4),
        "runs_wall_s": [round(w, 4) for w in walls],
    }


def ingest_ours(path: Path) -> list[tuple[str, str, str]]:
    from kemp_kg.dialogues import read_dialogues

    conversations, _ = read_dialogues([path])
    return [(c.conv_id, c.split, t.text) for c in conversations for t in c.turns]


def ingest_polars(path: Path) -> list[tuple[str, str, str]]:
    frame = pl.read_ndjson(path).select("conv_id", "split", "utterances").explode("utterances")
    return list(frame.iter_rows())


def dedup_ours(texts: list[str]) -> tuple[list[int], list[str]]:
    index: dict[str, int] = {}
    unique: list[str] = []
    ids = []
    for text in texts:
        i = index.get(text)
        if i is None:
            i = index[text] = len(unique)
            unique.append(text)
        ids.append(i)
    return ids, unique


def dedup_polars(texts: list[str]) -> tuple[list[int], list[str]]:
    frame = pl.DataFrame({"text": texts})
    unique = frame.unique("text", maintain_order=True).with_row_index("id")
    ids = frame.join(unique, on="text", how="left", maintain_order="left")["id"]
    return ids.to_list(), unique["text"].to_list()


def vocab_ours(tokens: pa.ListArray, occurrences: np.ndarray) -> dict[str, int]:
    encoded = tokens.values.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(tokens.offsets.to_numpy())
    weights = np.repeat(occurrences, lengths).astype(np.float64)
    totals = np.bincount(codes, weights=weights, minlength=len(encoded.dictionary))
    words = encoded.dictionary.to_pylist()
    return {w: int(n) for w, n in zip(words, totals.tolist(), strict=True) if n}


def vocab_polars(tokens: pa.ListArray, occurrences: np.ndarray) -> dict[str, int]:
    frame = pl.DataFrame({"token": pl.from_arrow(tokens), "weight": occurrences})
    counts = frame.explode("token").group_by("token").agg(pl.col("weight").sum())
    counts = counts.filter(pl.col("weight") > 0)
    return dict(zip(counts["token"].to_list(), counts["weight"].to_list(), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.input.exists():
        parser.error(f"--input {args.input} does not exist (see data/README.md)")
    load = os.getloadavg()[0]
    stages: dict[str, dict[str, object]] = {}

    rows_ours, ours = timed(lambda: ingest_ours(args.input), args.repeats)
    rows_polars, theirs = timed(lambda: ingest_polars(args.input), args.repeats)
    # ours drops turns it reports (a conversation ending with the speaker); compare the rest
    kept = set(rows_ours)
    assert kept <= set(rows_polars), "polars ingest lost rows"
    stages["ingest"] = {
        "ours": ours,
        "polars": theirs,
        "rows": len(rows_ours),
        "rows_polars": len(rows_polars),
    }

    texts = [text for _, _, text in rows_ours]
    (ids_o, uniq_o), ours = timed(lambda: dedup_ours(texts), args.repeats)
    (ids_p, uniq_p), theirs = timed(lambda: dedup_polars(texts), args.repeats)
    assert ids_o == ids_p and uniq_o == uniq_p, "dedup results differ"
    stages["dedup"] = {"ours": ours, "polars": theirs, "texts": len(texts), "unique": len(uniq_o)}

    occurrences = np.bincount(np.asarray(ids_o, dtype=np.int64), minlength=len(uniq_o))
    tokens = pa.array([t.lower().split() for t in uniq_o], type=pa.list_(pa.string()))
    counts_o, ours = timed(lambda: vocab_ours(tokens, occurrences), args.repeats)
    counts_p, theirs = timed(lambda: vocab_polars(tokens, occurrences), args.repeats)
    assert counts_o == counts_p, "vocabulary counts differ"
    stages["vocab"] = {
        "ours": ours,
        "polars": theirs,
        "tokens": len(tokens.values),
        "distinct": len(counts_o),
    }

    for stage in stages.values():
        stage["polars_over_ours_wall"] = round(
            stage["polars"]["best_wall_s"] / stage["ours"]["best_wall_s"], 2
        )
        stage["polars_over_ours_cpu"] = round(
            stage["polars"]["best_cpu_s"] / max(stage["ours"]["best_cpu_s"], 1e-9), 2
        )
    result = {
        "input": str(args.input),
        "command": " ".join([sys.executable, *sys.argv]),
        "polars_version": pl.__version__,
        "stages": stages,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1min_before": round(load, 2),
        },
        "note": "in-process, best of the repeats; > 1 means polars is slower",
    }
    print(
        json.dumps(
            {
                k: {r: v[r] for r in ("polars_over_ours_wall", "polars_over_ours_cpu")}
                for k, v in stages.items()
            },
            indent=1,
        )
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(repo_relative(json.dumps(result, indent=2)) + "\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
