"""Benchmark `kemp-kg build-index` on a generated ConceptNet-format dump, in one run, against

* the physical floor of this design: DuckDB's bare ``SELECT count(*) FROM read_csv(...)`` of the
  same file with the same reader options (:func:`kemp_kg.conceptnet.bare_scan_sql`);
* for reference, the manifest's source digest of the same file alone (XXH3-128,
  :func:`kemp_kg.digest.file_digest`; build-index reads it in a thread beside the scan) and the
  SHA-256 of the file alone (what the manifest used before: about as much CPU as the bare scan);
* the plain-Python streaming baseline (`bench/baseline_conceptnet_python.py`: csv.reader, tab
  split, json.loads, WordNet lemmatisation of both terms, intensity lookups, dedupe). The baseline
  runs on the first ``--baseline-rows`` lines and is EXTRAPOLATED per row to the whole file (its
  own clock, after NLTK/WordNet loading, so the extrapolation favours the baseline).

Every command runs as a child process under ``/usr/bin/time -v`` (wall clock and peak RSS of the
child). build-index is the whole CLI (interpreter start-up, checksums, Parquet exports, manifest),
the bare scan a Python process that imports duckdb and runs the count. Each is run ``--repeats``
times (best wall kept; all are recorded); the page cache is warm for all of them.

    .venv/bin/python bench/bench_build_index.py                          # 5.9M rows, .csv
    .venv/bin/python bench/bench_build_index.py --rows 34000000 --gz     # ConceptNet 5.7 size
    .venv/bin/python bench/bench_build_index.py --wordnet-only           # the WordNet source

Results are merged into ``bench/results/build_index.json`` under a key per configuration.
Generated dumps are cached under ``--scratch`` (default ``$KEMP_SCRATCH/bench``, else ``work/scratch/bench``
in the repo, which git ignores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# generated inputs live outside git: $KEMP_SCRATCH, else work/scratch in the repo (ignored)
SCRATCH = Path(
    os.environ.get("KEMP_SCRATCH", Path(__file__).resolve().parents[1] / "work" / "scratch")
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _paths import repo_relative  # noqa: E402
from generate_conceptnet import generate  # noqa: E402

from kemp_kg.index import SOURCE_DIGEST  # noqa: E402

BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get("KEMP_SHARED", REPO.parent / "shared"))
DEFAULT_LEXICON = SHARED / "data" / "nrc_vad" / "NRC-VAD-Lexicon.txt"
RESULTS = HERE / "results" / "build_index.json"


def timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``command`` under /usr/bin/time -v; return wall seconds, peak RSS and stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as handle:
        report = Path(handle.name)
    load_before = os.getloadavg()[0]
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
        raise RuntimeError(f"{command} failed ({run.returncode}): {run.stderr[-2000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = re.search(r"Percent of CPU this job got: (\d+)%", text)
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "cpu_percent": int(cpu.group(1)) if cpu else None,
        "cpu_s": (
            round(float(user.group(1)) + float(system.group(1)), 2) if user and system else None
        ),
        "load_avg_1min_before": round(load_before, 2),
        "stdout": run.stdout,
    }


def best(runs: list[dict[str, object]]) -> dict[str, object]:
    return min(runs, key=lambda r: r["wall_s"])  # type: ignore[arg-type, return-value]


def shell(command: list[str]) -> str:
    return " ".join(command)


def bench_dump(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    suffix = ".csv.gz" if args.gz else ".csv"
    dump = args.scratch / f"conceptnet-{args.rows}{suffix}"
    generation = None
    if not dump.exists():
        words = None
        if args.lexicon.exists():
            lines = args.lexicon.read_text(encoding="utf-8").splitlines()[1:]
            words = [line.split("\t")[0] for line in lines if line.strip()]
        print(f"generating {dump} ({args.rows:,} rows)...", flush=True)
        generation = generate(dump, args.rows, seed=0, words=words)
        print(json.dumps(generation), flush=True)
    size = dump.stat().st_size
    index_dir = args.scratch / "bench-index"
    env = {**os.environ, "NLTK_DATA": os.environ.get("NLTK_DATA", str(SHARED / "nltk_data"))}

    bare_cmd = [
        sys.executable,
        "-c",
        "import sys, duckdb; from kemp_kg.conceptnet import bare_scan_sql; "
        "con = duckdb.connect(); con.execute('SET enable_progress_bar = false'); "
        "print(con.execute(bare_scan_sql(sys.argv[1].endswith('.gz')), "
        "{'path': sys.argv[1]}).fetchone()[0])",
        str(dump),
    ]
    build_cmd = [
        str(BIN / "kemp-kg"),
        "build-index",
        str(dump),
        "--lexicon",
        str(args.lexicon),
        "--index",
        str(index_dir),
        "--force",
    ]
    hash_cmd = [
        sys.executable,
        "-c",
        "import hashlib, sys; "
        "print(hashlib.file_digest(open(sys.argv[1], 'rb'), 'sha256').hexdigest())",
        str(dump),
    ]
    digest_cmd = [
        sys.executable,
        "-c",
        "import sys; from kemp_kg.digest import file_digest; "
        "from kemp_kg.index import SOURCE_DIGEST; "
        "print(file_digest(sys.argv[1], SOURCE_DIGEST))",
        str(dump),
    ]
    base_cmd = [
        sys.executable,
        str(HERE / "baseline_conceptnet_python.py"),
        str(dump),
        "--lexicon",
        str(args.lexicon),
        "--limit",
        str(args.baseline_rows),
    ]

    bare_runs, build_runs, hash_runs, digest_runs = [], [], [], []
    for i in range(args.repeats):
        print(f"[{i + 1}/{args.repeats}] bare scan...", flush=True)
        bare_runs.append(timed(bare_cmd, env))
        print(f"  {bare_runs[-1]['wall_s']} s; build-index...", flush=True)
        build_runs.append(timed(build_cmd, env))
        print(f"  {build_runs[-1]['wall_s']} s; sha256 alone...", flush=True)
        hash_runs.append(timed(hash_cmd, env))
        print(f"  {hash_runs[-1]['wall_s']} s; source digest alone...", flush=True)
        digest_runs.append(timed(digest_cmd, env))
        print(f"  {digest_runs[-1]['wall_s']} s", flush=True)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    rows_scanned = int(str(bare_runs[0]["stdout"]).strip())
    print(f"baseline on the first {args.baseline_rows:,} lines...", flush=True)
    baseline = timed(base_cmd, env)
    baseline_out = json.loads(str(baseline["stdout"]).strip().splitlines()[-1])
    baseline_est = baseline_out["us_per_row"] * 1e-6 * rows_scanned
    baseline_cpu_est = baseline_out["cpu_us_per_row"] * 1e-6 * rows_scanned
    shutil.rmtree(index_dir, ignore_errors=True)

    bare_best, build_best, hash_best = best(bare_runs), best(build_runs), best(hash_runs)
    digest_best = best(digest_runs)
    for run in (*bare_runs, *build_runs, *hash_runs, *digest_runs, baseline):
        run.pop("stdout", None)
    result = {
        "dump": {
            "path": str(dump),
            "rows": rows_scanned,
            "bytes": size,
            "format": suffix,
            "generated": generation,
        },
        "commands": {
            "bare_scan": shell(bare_cmd),
            "build_index": shell(build_cmd),
            "sha256_alone": shell(hash_cmd),
            "source_digest_alone": shell(digest_cmd),
            "baseline": shell(base_cmd),
        },
        "bare_scan": {
            "best": bare_best,
            "runs": bare_runs,
            "gb_per_s": round(size / 1e9 / float(bare_best["wall_s"]), 3),
        },
        "sha256_alone": {"best": hash_best, "runs": hash_runs},
        "source_digest_alone": {
            "algorithm": SOURCE_DIGEST,
            "best": digest_best,
            "runs": digest_runs,
        },
        "build_index": {
            "best": build_best,
            "runs": build_runs,
            "counts": manifest["counts"],
            "skipped": manifest["skipped"],
        },
        "baseline": {
            "measured": baseline_out,
            "process": baseline,
            "extrapolated_s": round(baseline_est, 1),
            "extrapolated_cpu_s": round(baseline_cpu_est, 1),
            "note": f"measured on the first {baseline_out['rows']:,} lines, "
            "extrapolated per row to the whole file",
        },
        "ratios": {
            "build_over_bare_scan": round(
                float(build_best["wall_s"]) / float(bare_best["wall_s"]), 2
            ),
            "build_over_bare_scan_cpu_s": round(
                float(build_best["cpu_s"]) / float(bare_best["cpu_s"]), 2
            ),
            "baseline_over_build": round(baseline_est / float(build_best["wall_s"]), 1),
            "baseline_over_build_cpu_s": round(baseline_cpu_est / float(build_best["cpu_s"]), 1),
        },
        "targets": {
            "build_within_2x_of_bare_scan": True if args.rows < 10_000_000 else None,
            "at_least_20x_faster_than_baseline": True if args.rows < 10_000_000 else None,
            "under_5_min_and_4_gib": True if args.rows >= 10_000_000 else None,
        },
    }
    ratios = result["ratios"]
    if args.rows < 10_000_000:
        result["targets"] = {
            "build_within_2x_of_bare_scan": ratios["build_over_bare_scan"] <= 2.0,
            "at_least_20x_faster_than_baseline": ratios["baseline_over_build"] >= 20.0,
        }
    else:
        result["targets"] = {
            "under_5_min": float(build_best["wall_s"]) < 300,
            "under_4_gib_peak_rss": float(build_best["peak_rss_mib"] or 0) < 4096,
        }
    return f"conceptnet_{args.rows}{suffix.replace('.', '_')}", result


def bench_wordnet(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    index_dir = args.scratch / "bench-index-wordnet"
    env = {**os.environ, "NLTK_DATA": os.environ.get("NLTK_DATA", str(SHARED / "nltk_data"))}
    cmd = [
        str(BIN / "kemp-kg"),
        "build-index",
        "wordnet",
        "--lexicon",
        str(args.lexicon),
        "--index",
        str(index_dir),
        "--force",
    ]
    runs = []
    for i in range(args.repeats):
        print(f"[{i + 1}/{args.repeats}] build-index wordnet...", flush=True)
        runs.append(timed(cmd, env))
        runs[-1].pop("stdout", None)
        print(f"  {runs[-1]['wall_s']} s", flush=True)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    shutil.rmtree(index_dir, ignore_errors=True)
    top = best(runs)
    return "wordnet", {
        "command": shell(cmd),
        "best": top,
        "runs": runs,
        "counts": manifest["counts"],
        "targets": {"under_60_s": float(top["wall_s"]) < 60},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_900_000)
    parser.add_argument("--gz", action="store_true", help="generate/read a .csv.gz dump")
    parser.add_argument("--lexicon", type=Path, default=DEFAULT_LEXICON)
    parser.add_argument("--scratch", type=Path, default=SCRATCH / "bench")
    parser.add_argument("--baseline-rows", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--wordnet", action="store_true", help="also time the WordNet source")
    parser.add_argument("--wordnet-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.lexicon.exists():
        parser.error(f"--lexicon {args.lexicon} does not exist (NRC-VAD v1; see data/README.md)")
    args.scratch.mkdir(parents=True, exist_ok=True)
    entries = []
    if not args.wordnet_only:
        entries.append(bench_dump(args))
    if args.wordnet or args.wordnet_only:
        entries.append(bench_wordnet(args))
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "note": "shared machine: other jobs ran at the same time (see load_avg fields)",
    }
    for key, value in entries:
        value["measured_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        value["machine"] = machine
        results[key] = value
        print(
            json.dumps(
                {key: {k: value[k] for k in value if k in ("ratios", "targets", "best")}}, indent=1
            ),
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(repo_relative(json.dumps(results, indent=2)) + "\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
