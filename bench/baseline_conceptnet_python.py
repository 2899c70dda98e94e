"""BASELINE (not part of kemp): the plain-Python streaming preprocessing of a ConceptNet dump.

This is the per-row work the KEMP-family preprocessing scripts do, written as a fair, tidy loop so
that `bench/bench_build_index.py` can compare `kemp-kg build-index` against it in the same run:

* read the dump with ``csv.reader`` (comma-separated, as the official KEMP script reads
  ``assertions.csv``), join the comma fields back and split them on tabs;
* keep English-English assertions (both ends ``/c/en/``: the correct test, where the official
  script tests the head twice);
* ``json.loads`` the metadata for the weight (the official script uses ``ast.literal_eval``, which
  is slower and unsafe: json keeps this baseline conservative);
* parse both concept URIs (kemp's own :func:`kemp_kg.conceptnet.parse_concept_uri`) and lemmatise
  both terms with NLTK's ``WordNetLemmatizer`` as the official code does;
* look both terms up in the NRC-VAD intensity table (Eq. 1);
* deduplicate (head, relation, tail) keeping the highest weight, dropping self-loops.

    .venv/bin/python bench/baseline_conceptnet_python.py DUMP --lexicon NRC-VAD-Lexicon.txt \
        [--limit ROWS]

Prints one JSON line: rows read, rows kept, edges, seconds, microseconds per row (wall and CPU,
the loop only, after start-up). ``--limit``
stops after that many lines (the benchmark extrapolates per row from such a prefix).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
import time
from pathlib import Path

from kemp_kg.conceptnet import parse_concept_uri, parse_relation_uri
from kemp_kg.intensity import load_lexicon


def run(dump: Path, lexicon: Path, limit: int | None) -> dict[str, object]:
    from nltk.stem import WordNetLemmatizer

    lemmatizer = WordNetLemmatizer()
    lemmatizer.lemmatize("warm")  # load WordNet before the clock starts
    eta = load_lexicon(lexicon).lookup()
    opener = gzip.open if dump.name.endswith(".gz") else open
    edges: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    rows = kept = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    with opener(dump, "rt", encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.reader(handle):
            rows += 1
            if limit is not None and rows > limit:
                rows -= 1
                break
            fields = ",".join(row).split("\t")
            if len(fields) != 5:
                continue
            _, relation, start, end, meta = fields
            if not (start.startswith("/c/en/") and end.startswith("/c/en/")):
                continue
            try:
                weight = float(json.loads(meta)["weight"])
            except (ValueError, KeyError, TypeError):
                continue
            head_uri = parse_concept_uri(start)
            tail_uri = parse_concept_uri(end)
            if head_uri is None or tail_uri is None:
                continue
            head = lemmatizer.lemmatize(head_uri.term)
            tail = lemmatizer.lemmatize(tail_uri.term)
            if head == tail:
                continue
            kept += 1
            key = (head, parse_relation_uri(relation), tail)
            previous = edges.get(key)
            if previous is None or weight > previous[0]:
                edges[key] = (weight, eta.get(head, 0.0), eta.get(tail, 0.0))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {
        "rows": rows,
        "rows_kept": kept,
        "edges": len(edges),
        "seconds": round(seconds, 3),
        "us_per_row": round(1e6 * seconds / max(rows, 1), 3),
        "cpu_us_per_row": round(1e6 * cpu_seconds / max(rows, 1), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="plain-Python ConceptNet preprocessing baseline")
    parser.add_argument("dump", type=Path)
    parser.add_argument("--lexicon", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many lines")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.dump, args.lexicon, args.limit)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
