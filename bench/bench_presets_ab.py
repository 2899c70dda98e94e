"""Presets at equal steps: validation perplexity and accuracy of each arm after the same number
of training steps on the same graph file (a reduced schedule, labelled as such).

    .venv/bin/python bench/bench_presets_ab.py --graphs ED.arrow [--steps 2000] [--work work/ab]

Arms (``ARMS``): the faithful ``kemp`` and ``transformer`` presets against this project's
earlier ``kemp-small`` and ``transformer-small``, and the three ways of filling the 300-wide word
table of ``kemp`` from GloVe 50d (orthonormal map, first columns, no vectors). Every arm trains
with the same seed, batch order, validation slice (``--eval-examples``) and step count; early
stopping is off. Runs are resumable: a rerun continues unfinished arms with ``--resume`` and
skips finished ones, so the command can be repeated across sessions. Each arm runs as its own
``kemp-model train`` process (``--lanes`` at a time). Writes ``bench/results/presets_ab.json``
with every arm's validation records and a Markdown table (stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _paths import repo_relative  # bench/ is sys.path[0] when run as a script

from kemp_model.checkpoint import read_metrics

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent.parent / "shared" / "data" / "vectors" / "glove.6B.50d.npy"

#: arm name -> (preset, extra flags; "{vectors}" is replaced by the GloVe file)
ARMS: dict[str, tuple[str, list[str]]] = {
    "kemp": ("kemp", ["--embeddings", "{vectors}"]),
    "kemp-small": ("kemp-small", ["--embeddings", "{vectors}"]),
    "transformer": ("transformer", ["--embeddings", "{vectors}"]),
    "transformer-small": ("transformer-small", ["--embeddings", "{vectors}"]),
    "kemp-prefix": ("kemp", ["--embeddings", "{vectors}", "--embedding-placement", "prefix"]),
    "kemp-noglove": ("kemp", []),
}


def _finished(run: Path, steps: int) -> bool:
    return any(r.get("kind") == "valid" and r.get("step") == steps for r in read_metrics(run))


def train_arm(name: str, args: argparse.Namespace) -> dict:
    preset, extra = ARMS[name]
    run = args.work / name
    bin_dir = Path(sys.executable).parent
    started = time.perf_counter()
    if not _finished(run, args.steps):
        command = [
            str(bin_dir / "kemp-model"),
            "train",
            "--graphs",
            str(args.graphs),
            "--preset",
            preset,
            "--out",
            str(run),
            "--max-steps",
            str(args.steps),
            "--eval-every",
            str(args.eval_every),
            "--eval-examples",
            str(args.eval_examples),
            "--patience",
            "0",
            "--early-stopping-from",
            "0",
            "--threads",
            str(args.threads),
            "--seed",
            "0",
            "--no-progress",
            *[f.replace("{vectors}", str(args.vectors)) for f in extra],
        ]
        if (run / "last.state.safetensors").is_file():  # vectors are only read by a new run
            command += ["--resume"]
        args.work.mkdir(parents=True, exist_ok=True)
        with open(args.work / f"{name}.log", "a") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    records = read_metrics(run)
    config = json.loads((run / "config.json").read_text())
    valid = [r for r in records if r.get("kind") == "valid"]
    return {
        "preset": preset,
        "flags": extra,
        "valid": valid,
        "embeddings": config.get("embeddings"),
        "steps": max((r["step"] for r in records), default=0),
        "wall_s_this_call": time.perf_counter() - started,
        "config_train": config.get("train"),
    }


def table(results: dict[str, dict], steps: int) -> str:
    lines = [
        f"| arm | preset | valid ppl per example @ {steps} | pooled | emotion acc. | best per example up to {steps} (step) |",
        "|---|---|---|---|---|---|",
    ]
    for name, arm in results.items():
        last = next((r for r in arm["valid"] if r["step"] == steps), None)
        if last is None:
            lines.append(f"| {name} | {arm['preset']} | [unfinished: step {arm['steps']}] | | | |")
            continue
        best = min(
            (r for r in arm["valid"] if r["step"] <= steps), key=lambda r: r["ppl_per_example"]
        )
        acc = f"{100 * last['emotion_accuracy']:.1f}%" if "emotion_accuracy" in last else "-"
        lines.append(
            f"| {name} | {arm['preset']} | {last['ppl_per_example']:.2f} | {last['ppl_pooled']:.2f} | "
            f"{acc} | {best['ppl_per_example']:.2f} ({best['step']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=Path, required=True)
    parser.add_argument("--vectors", type=Path, default=VECTORS)
    parser.add_argument("--work", type=Path, default=HERE.parent / "work" / "ab")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-examples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "presets_ab.json")
    args = parser.parse_args()
    with ThreadPoolExecutor(max_workers=args.lanes) as pool:
        results = dict(zip(args.arms, pool.map(lambda name: train_arm(name, args), args.arms)))
    text = table(results, args.steps)
    payload = {
        "command": " ".join(["python", "bench/bench_presets_ab.py", *sys.argv[1:]]),
        "graphs": repo_relative(str(args.graphs)),
        "steps": args.steps,
        "eval_every": args.eval_every,
        "eval_examples": args.eval_examples,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "label": f"reduced schedule: {args.steps:,} of the paper's 26,000 steps",
        "arms": results,
        "table": text,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(repo_relative(json.dumps(payload, indent=2)) + "\n")
    print(text)
    print(f"wrote {repo_relative(str(args.out))}")


if __name__ == "__main__":
    main()
