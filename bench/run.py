"""Run the benchmarks by name: `python bench/run.py [all|NAME ...]`.

Each benchmark is a script `bench/bench_<NAME>.py` that times the project against a baseline in the
same run, reports a ratio and peak RSS, and writes `bench/results/<NAME>.json`. This runner only
finds and starts them, one after another (they are noisy enough without competing for cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str]) -> int:
    scripts = available()
    names = list(scripts) if not argv or argv == ["all"] else argv
    unknown = [n for n in names if n not in scripts]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {sorted(scripts)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        if subprocess.call([sys.executable, str(scripts[name])]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
