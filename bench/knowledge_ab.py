"""KEMP vs w/o ECE on the earlier and the new knowledge, at equal (REDUCED) steps.

Trains ``kemp`` and ``wo-ece`` on the two graph files ``bench/bench_knowledge.py`` writes
(``before``: ``conceptnet`` WordNet rules + ``paper`` preset; ``after``: ``sense`` rules +
``sense`` preset), same seed, same steps, GloVe 6B 50d, one CPU thread each, validating on the
first ``--eval-examples`` valid examples, and records the last validation of every run (emotion
accuracy, perplexity) in ``bench/results/knowledge_ab.json``. This is a reduced schedule (the
paper trains 26,000 steps): it shows the direction of the gap, not the paper's figures.

    NLTK_DATA=../shared/nltk_data .venv/bin/python bench/knowledge_ab.py --steps 2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from _paths import repo_relative  # bench/ is sys.path[0] when run as a script
from bench_enrich import timed

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get("KEMP_SHARED", REPO.parent / "shared"))
SCRATCH = Path(os.environ.get("KEMP_SCRATCH", REPO / "work" / "scratch"))
RESULTS = HERE / "results" / "knowledge_ab.json"


def last_validation(run: Path) -> dict[str, object]:
    """The last validation record of a run's metrics.jsonl."""
    records = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    valid = [r for r in records if r.get("kind") == "valid"]
    if not valid:
        raise SystemExit(f"{run}: no validation in metrics.jsonl")
    return valid[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=Path, default=SCRATCH / "bench_knowledge")
    parser.add_argument("--runs", type=Path, default=SCRATCH / "knowledge_ab")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-examples", type=int, default=1000)
    parser.add_argument("--presets", default="kemp,wo-ece")
    parser.add_argument("--arms", default="before,after")
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="JSON to write (two processes, one per arm, need two files)",
    )
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))
    vectors = SHARED / "data" / "vectors" / "glove.6B.50d.npy"
    results: dict[str, object] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": f"NLTK_DATA=../shared/nltk_data .venv/bin/python bench/knowledge_ab.py "
        f"--steps {args.steps} --eval-examples {args.eval_examples} "
        f"--arms {args.arms}",
        "schedule": f"REDUCED: {args.steps} steps (the paper: 26,000), batch 16, seed 0",
        "runs": {},
    }
    for arm in args.arms.split(","):
        graphs = args.graphs / f"ed-{arm}.arrow"
        for preset in args.presets.split(","):
            out = args.runs / f"{preset}-{arm}"
            run = timed(
                [
                    str(BIN / "kemp-model"),
                    "train",
                    "--graphs",
                    str(graphs),
                    "--preset",
                    preset,
                    "--out",
                    str(out),
                    "--embeddings",
                    str(vectors),
                    "--max-steps",
                    str(args.steps),
                    "--eval-every",
                    str(args.steps // 2),
                    "--eval-examples",
                    str(args.eval_examples),
                    "--patience",
                    "0",
                    "--early-stopping-from",
                    "0",
                    "--threads",
                    "1",
                    "--seed",
                    "0",
                    "--force",
                    "--no-progress",
                ],
                env,
            )
            record = {k: v for k, v in run.items() if k != "stdout"}
            record["last_validation"] = last_validation(out)
            results["runs"][f"{preset}/{arm}"] = record
            print(preset, arm, json.dumps(record["last_validation"]), flush=True)
            args.results.write_text(repo_relative(json.dumps(results, indent=1)) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
