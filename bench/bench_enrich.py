"""Benchmark `kemp-kg enrich` on all three EmpatheticDialogues splits against the WordNet index.

In one run:

1. builds (or reuses) the WordNet + NRC-VAD index under ``--scratch``;
2. runs ``kemp-kg enrich ../shared/data/ed --index IDX --out ed.arrow`` (the whole CLI, as a child
   under ``/usr/bin/time -v``: wall clock, peak RSS of the largest process, CPU seconds), target
   < 60 s on 2 cores;
3. runs the plain-Python per-example baseline (``bench/baseline_enrich_python.py``) on a seeded
   sample of ``--baseline-sample`` examples with the same vocabulary, EXTRAPOLATES its
   per-example time to all examples (plus its one-off loads), reports the ratio, and compares
   its concepts with ours on the sampled rows (agreement = identical concept lists);
4. opens ``ed.arrow`` with ``schema.open_graphs`` in a FRESH interpreter (after importing
   pyarrow and kemp_kg.schema) and reports the open time and the RSS increase (target < 50 ms,
   < 50 MB).

The machine's 1-minute load average is recorded next to each timing: the machine is shared, so
CPU seconds are the steadier figure. Results go to ``bench/results/enrich.json``.

    .venv/bin/python bench/bench_enrich.py [--baseline-sample 2000] [--preset paper]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _paths import repo_relative  # bench/ is sys.path[0] when run as a script

# generated inputs live outside git: $KEMP_SCRATCH, else work/scratch in the repo (ignored)
SCRATCH = Path(
    os.environ.get("KEMP_SCRATCH", Path(__file__).resolve().parents[1] / "work" / "scratch")
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get("KEMP_SHARED", REPO.parent / "shared"))
RESULTS = HERE / "results" / "enrich.json"

OPEN_SNIPPET = r"""
import json, sys, time
import pyarrow, kemp_kg.schema as schema
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
before = rss()
t = time.perf_counter()
graphs = schema.open_graphs(sys.argv[1])
opened = time.perf_counter() - t
after = rss()
n = len(graphs)
col = graphs.table["context_ids"]
print(json.dumps({"open_s": opened, "rss_increase_bytes": after - before, "rows": n,
                  "vocab": len(graphs.vocab), "chunks": col.num_chunks}))
"""


def timed(command: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run under /usr/bin/time -v: wall, peak RSS (largest process), user+sys CPU, stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as handle:
        report = Path(handle.name)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-v", "-o", str(report), *command],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - started
    text = report.read_text()
    report.unlink(missing_ok=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr[-2000:]}")

    def field(name: str) -> float:
        match = re.search(rf"{name}: ([\d.]+)", text)
        return float(match.group(1)) if match else float("nan")

    return {
        "command": " ".join(command),
        "wall_s": round(wall, 3),
        "cpu_s": round(field("User time \\(seconds\\)") + field("System time \\(seconds\\)"), 3),
        "peak_rss_mb": round(field("Maximum resident set size \\(kbytes\\)") / 1024, 1),
        "load_avg_1m_before": round(load, 2),
        "stdout": run.stdout,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=SCRATCH / "bench_enrich")
    parser.add_argument("--baseline-sample", type=int, default=2000)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))
    env["COLUMNS"] = "120"
    ed = SHARED / "data" / "ed"
    lexicon = SHARED / "data" / "nrc_vad" / "NRC-VAD-Lexicon.txt"
    args.scratch.mkdir(parents=True, exist_ok=True)
    index = args.scratch / "wn_index"
    out = args.scratch / "ed.arrow"
    results: dict[str, object] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
    }

    build = timed(
        [
            str(BIN / "kemp-kg"),
            "build-index",
            "wordnet",
            "--lexicon",
            str(lexicon),
            "--index",
            str(index),
        ],
        env,
    )
    results["build_index_wordnet"] = {k: v for k, v in build.items() if k != "stdout"}

    enrich = timed(
        [
            str(BIN / "kemp-kg"),
            "enrich",
            str(ed),
            "--index",
            str(index),
            "--out",
            str(out),
            "--preset",
            args.preset,
        ],
        env,
    )
    results["enrich"] = {k: v for k, v in enrich.items() if k != "stdout"}
    results["enrich"]["summary"] = enrich["stdout"]
    results["enrich"]["target_s"] = 60
    print(enrich["stdout"])
    print(
        f"enrich: {enrich['wall_s']} s wall, {enrich['cpu_s']} s CPU, peak RSS "
        f"{enrich['peak_rss_mb']} MB (load avg before {enrich['load_avg_1m_before']})"
    )

    opened = subprocess.run(
        [sys.executable, "-c", OPEN_SNIPPET, str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    reader = json.loads(opened.stdout)
    reader["file_mb"] = round(out.stat().st_size / 2**20, 1)
    reader["rss_increase_mb"] = round(reader.pop("rss_increase_bytes") / 2**20, 2)
    reader["open_ms"] = round(reader.pop("open_s") * 1000, 2)
    reader["targets"] = {"open_ms": 50, "rss_increase_mb": 50}
    results["open_graphs"] = reader
    print(
        f"open_graphs: {reader['open_ms']} ms, RSS +{reader['rss_increase_mb']} MB for a "
        f"{reader['file_mb']} MB file of {reader['rows']} rows"
    )

    if not args.skip_baseline:
        baseline_json = args.scratch / "baseline.json"  # in scratch: the command is recorded
        base = timed(
            [
                sys.executable,
                str(HERE / "baseline_enrich_python.py"),
                str(ed),
                "--index",
                str(index),
                "--sample",
                str(args.baseline_sample),
                "--vocab-from",
                str(out),
                "--json",
                str(baseline_json),
            ],
            env,
        )
        figures = json.loads(baseline_json.read_text())
        baseline_json.unlink(missing_ok=True)
        ours = _our_concepts(out, set(figures["concepts"]))
        agree = sum(ours.get(k) == v for k, v in figures["concepts"].items())
        results["baseline"] = {
            **{k: v for k, v in base.items() if k != "stdout"},
            **{k: v for k, v in figures.items() if k != "concepts"},
            "concepts_identical": agree,
            "note": "per-example time on a seeded sample, extrapolated to all examples, "
            "plus its one-off loads",
        }
        ratio = figures["extrapolated_s"] / enrich["wall_s"]
        results["ratio_baseline_over_enrich_wall"] = round(ratio, 2)
        cpu_ratio = figures["extrapolated_cpu_s"] / enrich["cpu_s"]
        results["ratio_baseline_over_enrich_cpu"] = round(cpu_ratio, 2)
        print(
            f"baseline: {figures['per_example_s'] * 1000:.2f} ms/example on "
            f"{figures['sample']} examples -> {figures['extrapolated_s']:.0f} s extrapolated; "
            f"enrich is {ratio:.1f}x faster (wall); CPU {figures['extrapolated_cpu_s']:.0f} s vs "
            f"{enrich['cpu_s']} s = {cpu_ratio:.1f}x; concepts identical on "
            f"{agree}/{figures['sample']}"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(repo_relative(json.dumps(results, indent=1)) + "\n")
    print(f"wrote {RESULTS}")
    return 0


def _our_concepts(path: Path, ids: set[str]) -> dict[str, list[str]]:
    sys.path.insert(0, str(REPO / "packages" / "kemp-kg" / "src"))
    from kemp_kg import schema

    graphs = schema.open_graphs(path)
    vocab = graphs.vocab
    out = {}
    for example_id, concepts in zip(
        graphs.table["example_id"].to_pylist(), graphs.table["concept_ids"].to_pylist()
    ):
        if example_id in ids:
            out[example_id] = [vocab[c] for c in concepts]
    return out


if __name__ == "__main__":
    sys.exit(main())
