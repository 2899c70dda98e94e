"""Training throughput and the data path: kemp-model vs the naive loop, in the same run.

    .venv/bin/python bench/bench_train.py [--graphs FILE] [--steps 60] [--repeats 2] [--threads 1]

Each arm runs in its own fresh process (so peak RSS is per arm):

* ``ours``: the memory-mapped graph file, length-bucketed batches, vectorised collate, the
  ``kemp`` preset at batch 16: time to first batch, loader throughput, training examples/s.
  Training is timed on the same seeded random rows in both arms (ours groups them by length,
  the naive loop keeps them in random order), so the step-time difference is the padding.
* ``naive`` (bench/baseline_train_naive.py): the same split loaded from JSON into Python
  lists, random unbucketed batches, per-example Python collate, the same model and optimiser.
* ``cold``: a fresh interpreter timing imports + open + first batch (what a user waits for),
  and separately the full file check (``GraphFile.verify``) that ``kemp-model train`` /
  ``evaluate`` / ``generate`` run once between opening and the first batch.
* ``paired``: both training loops in one process, alternating step by step on the same rows;
  its ratio is the headline training speed-up (separate runs drift with the machine's load).

Without ``--graphs`` it uses the full ED graph file if one is at ``$KEMP_SCRATCH/enrich/ed.arrow``
and otherwise writes a synthetic file with ED-like sizes (bench/synthetic_graphs.py) under
``$KEMP_SCRATCH/bench_train/``. Writes ``bench/results/train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _paths import repo_relative  # bench/ is sys.path[0] when run as a script

HERE = Path(__file__).resolve().parent
SCRATCH = (
    Path(os.environ.get("KEMP_SCRATCH", Path(__file__).resolve().parents[1] / "work" / "scratch"))
    / "bench_train"
)
REAL_ED = SCRATCH.parent / "enrich" / "ed.arrow"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_and_optimizer(preset: str, vocab_size: int, seed: int):
    import torch

    from kemp_model.config import get_preset
    from kemp_model.loss import Loss
    from kemp_model.model import KEMP

    torch.manual_seed(seed)
    preset_obj = get_preset(preset)
    model = KEMP(preset_obj.model, vocab_size)
    model.objective = Loss(preset_obj.loss, vocab_size)  # the trainer's objective, carried along
    tc = preset_obj.train
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=tc.adam_betas, eps=tc.adam_eps)
    return model, optimizer


def _loss(model, batch):
    """The training objective of one batch (forward pass + :class:`kemp_model.loss.Loss`)."""
    out = model(batch, smoothing=model.objective.smoothing)
    return out, model.objective(out, out.token_count.clamp(min=1), out.example_count.clamp(min=1))


def _train(model, optimizer, batches, warmup: int, steps: int, batch_size: int) -> dict:
    model.train()
    tokens = padded = vertices = vertex_slots = 0
    started = None
    for index, batch in enumerate(batches):
        if index == warmup:
            started = time.perf_counter()
        out, loss = _loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= warmup:
            tokens += int(out.token_count)
            padded += batch.target.numel()
            vertices += int(batch.context_mask.sum() + batch.concept_mask.sum())
            vertex_slots += batch.context_mask.numel() + batch.concept_mask.numel()
        if index + 1 == warmup + steps:
            break
    elapsed = time.perf_counter() - started
    return {
        "train_examples_per_s": steps * batch_size / elapsed,
        "train_step_ms": 1000 * elapsed / steps,
        "target_padding_share": 1 - tokens / padded,
        "vertex_padding_share": 1 - vertices / vertex_slots,
    }


def _subset(rows: int, args):
    """The rows both arms train on: a seeded random sample of (warmup + steps) batches."""
    import numpy as np

    count = (args.warmup + args.steps) * args.batch_size
    return np.random.default_rng(1234).permutation(rows)[:count]


def arm_ours(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from kemp_model.data import BatchSampler, load_split

    t0 = time.perf_counter()
    dataset, vocab, _ = load_split(args.graphs, "train")
    sampler = BatchSampler(dataset.sizes(), batch_size=args.batch_size, seed=0)
    plan = list(sampler)
    dataset.collate(plan[0])
    first_batch_s = time.perf_counter() - t0
    n = min(args.loader_batches, len(plan))
    loader = 0.0
    for _ in range(3):  # best of three passes
        t1 = time.perf_counter()
        for rows in plan[:n]:
            dataset.collate(rows)
        loader = max(loader, n * args.batch_size / (time.perf_counter() - t1))
    # Training is timed on the SAME rows in both arms (a seeded random subset): ours groups them
    # by length, the naive loop takes them in random order, so the difference is the padding.
    subset = _subset(len(dataset), args)
    window = args.warmup + args.steps
    grouped = BatchSampler(
        dataset.sizes()[subset], batch_size=args.batch_size, seed=0, bucket_batches=window
    )
    model, optimizer = _model_and_optimizer(args.preset, len(vocab), args.seed)
    stats = _train(
        model,
        optimizer,
        (dataset.collate(subset[b]) for b in grouped),
        args.warmup,
        args.steps,
        args.batch_size,
    )
    return {
        "first_batch_s": first_batch_s,
        "loader_examples_per_s": loader,
        **stats,
        "rows": len(dataset),
        "vocab": len(vocab),
        "peak_rss_mb": peak_rss_mb(),
    }


def arm_naive(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    import baseline_train_naive as naive

    json_path = SCRATCH / (Path(args.graphs).stem + ".train.json")
    if not json_path.is_file():
        naive.export_json(Path(args.graphs), json_path)
    t0 = time.perf_counter()
    corpus = naive.load_json(json_path)
    first = next(naive.batches(corpus, args.batch_size))
    first_batch_s = time.perf_counter() - t0
    del first
    n = min(args.loader_batches, len(corpus) // args.batch_size)
    loader = 0.0
    for seed in range(3):  # best of three passes
        t1 = time.perf_counter()
        for i, _ in enumerate(naive.batches(corpus, args.batch_size, seed=seed)):
            if i + 1 == n:
                break
        loader = max(loader, n * args.batch_size / (time.perf_counter() - t1))
    from kemp_kg import schema
    from kemp_model.checkpoint import vocab_checksum  # noqa: F401  (same import cost as ours)

    vocab_size = len(schema.open_graphs(args.graphs).vocab)
    model, optimizer = _model_and_optimizer(args.preset, vocab_size, args.seed)
    subset = _subset(len(corpus), args)
    random_order = (
        naive.collate([corpus[i] for i in subset[k : k + args.batch_size]])
        for k in range(0, len(subset), args.batch_size)
    )
    stats = _train(model, optimizer, random_order, args.warmup, args.steps, args.batch_size)
    return {
        "first_batch_s": first_batch_s,
        "loader_examples_per_s": loader,
        **stats,
        "json_bytes": json_path.stat().st_size,
        "peak_rss_mb": peak_rss_mb(),
    }


def arm_paired(args) -> dict:
    """Both training loops in one process, alternating step by step on the same rows, so load
    drift on a shared machine hits both equally: the robust step-time ratio."""
    import torch

    torch.set_num_threads(args.threads)
    import baseline_train_naive as naive

    from kemp_model.data import BatchSampler, load_split

    dataset, vocab, _ = load_split(args.graphs, "train")
    corpus = naive.load_json(SCRATCH / (Path(args.graphs).stem + ".train.json"))
    subset = _subset(len(dataset), args)
    grouped = [
        subset[b]
        for b in BatchSampler(
            dataset.sizes()[subset],
            batch_size=args.batch_size,
            seed=0,
            bucket_batches=args.warmup + args.steps,
        )
    ]
    random_rows = [subset[k : k + args.batch_size] for k in range(0, len(subset), args.batch_size)]
    arms = {
        "ours": (
            _model_and_optimizer(args.preset, len(vocab), args.seed),
            lambda i: dataset.collate(grouped[i]),
        ),
        "naive": (
            _model_and_optimizer(args.preset, len(vocab), args.seed),
            lambda i: naive.collate([corpus[j] for j in random_rows[i]]),
        ),
    }
    spent = {name: 0.0 for name in arms}
    for i in range(args.warmup + args.steps):
        for name, ((model, optimizer), make_batch) in arms.items():
            start = time.perf_counter()
            _, loss = _loss(model, make_batch(i))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i >= args.warmup:
                spent[name] += time.perf_counter() - start
    speed = {
        f"{name}_train_examples_per_s": args.steps * args.batch_size / t
        for name, t in spent.items()
    }
    return {**speed, "train_speedup_vs_naive": spent["naive"] / spent["ours"]}


def arm_cold(args) -> dict:
    t0 = time.perf_counter()
    from kemp_model.data import BatchSampler, load_split

    imported = time.perf_counter() - t0
    dataset, _, _ = load_split(args.graphs, "train")
    rows = next(iter(BatchSampler(dataset.sizes(), batch_size=args.batch_size, seed=0)))
    dataset.collate(rows)
    first = time.perf_counter() - t0
    # train/evaluate/generate also check the whole file once before their first batch (cold
    # pages here, as for a user): timed apart so the first-batch figure stays the data path's
    t1 = time.perf_counter()
    dataset.graphs.verify()
    verify_s = time.perf_counter() - t1
    return {
        "imports_s": imported,
        "first_batch_after_imports_s": first - imported,
        "total_s": first,
        "verify_s": verify_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_arm(name: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--arm",
        name,
        "--graphs",
        str(args.graphs),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--preset",
        args.preset,
        "--loader-batches",
        str(args.loader_batches),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--graphs", type=Path)
    parser.add_argument("--preset", default="kemp-small")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2, help="ABAB repeats; the best counts")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loader-batches", type=int, default=400)
    parser.add_argument("--arm", choices=["ours", "naive", "cold", "paired"])
    args = parser.parse_args()
    if args.arm:
        sys.path.insert(0, str(HERE))
        arms = {"ours": arm_ours, "naive": arm_naive, "cold": arm_cold, "paired": arm_paired}
        result = arms[args.arm](args)
        print(json.dumps(result))
        return
    source = "given"
    if args.graphs is None:
        if REAL_ED.is_file():
            args.graphs, source = REAL_ED, "full ED, WordNet-enriched (kemp-kg enrich)"
        else:
            sys.path.insert(0, str(HERE))
            import synthetic_graphs

            args.graphs = SCRATCH / "synthetic.arrow"
            if not args.graphs.is_file():
                synthetic_graphs.write(args.graphs)
            source = "synthetic, ED-like sizes (bench/synthetic_graphs.py)"
    # ours and naive alternate (ABAB...) and each keeps its best repeat: on a shared machine the
    # load drifts, and the best of several short runs is the least disturbed one.
    results = {"cold": run_arm("cold", args)}
    repeats: dict[str, list[dict]] = {"ours": [], "naive": []}
    for _ in range(args.repeats):
        for name in ("ours", "naive"):
            repeats[name].append(run_arm(name, args))
    for name, runs in repeats.items():
        best = dict(max(runs, key=lambda r: r["train_examples_per_s"]))
        best["train_examples_per_s_repeats"] = [r["train_examples_per_s"] for r in runs]
        best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        results[name] = best
    ours, naive = results["ours"], results["naive"]
    results["paired"] = run_arm("paired", args)
    summary = {
        "benchmark": "train",
        "graphs": str(args.graphs),
        "graphs_source": source,
        "preset": args.preset,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "timed_steps": args.steps,
        "repeats": args.repeats,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}",
        "arms": results,
        "train_speedup_vs_naive": results["paired"]["train_speedup_vs_naive"],
        "train_speedup_vs_naive_separate_runs": ours["train_examples_per_s"]
        / naive["train_examples_per_s"],
        "loader_speedup_vs_naive": ours["loader_examples_per_s"] / naive["loader_examples_per_s"],
        "first_batch_speedup_vs_naive": naive["first_batch_s"] / ours["first_batch_s"],
        "loader_over_step_consumption": ours["loader_examples_per_s"]
        / ours["train_examples_per_s"],
        "full_schedule_hours_26k_steps": 26_000
        * args.batch_size
        / ours["train_examples_per_s"]
        / 3600,
    }
    out = HERE / "results" / "train.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(repo_relative(json.dumps(summary, indent=2)) + "\n")
    print(
        f"graphs: {args.graphs} ({source}); preset {args.preset}, batch {args.batch_size}, "
        f"{args.threads} thread(s), {summary['machine']}"
    )
    print(f"{'':28}{'ours':>12}{'naive':>12}{'ratio':>8}")
    rows = [
        ("train examples/s", "train_examples_per_s", True),
        ("loader examples/s", "loader_examples_per_s", True),
        ("time to first batch (s)", "first_batch_s", False),
        ("vertex padding share", "vertex_padding_share", False),
        ("target padding share", "target_padding_share", False),
        ("peak RSS (MB)", "peak_rss_mb", False),
    ]
    for label, key, higher in rows:
        a, b = ours[key], naive[key]
        ratio = a / b if higher else b / max(a, 1e-12)
        print(f"{label:28}{a:12.3f}{b:12.3f}{ratio:7.1f}x")
    paired = results["paired"]
    print(
        f"paired (one process, alternating steps, same rows): ours "
        f"{paired['ours_train_examples_per_s']:.1f} vs naive {paired['naive_train_examples_per_s']:.1f} "
        f"examples/s = {paired['train_speedup_vs_naive']:.2f}x"
    )
    cold = results["cold"]
    print(
        f"cold start: imports {cold['imports_s']:.2f} s + open and first batch "
        f"{cold['first_batch_after_imports_s']:.3f} s; + full file check (train/evaluate run it "
        f"once before the first batch) {cold['verify_s']:.3f} s"
    )
    print(
        f"loader / step consumption: {summary['loader_over_step_consumption']:.0f}x; "
        f"26k-step schedule at this speed: {summary['full_schedule_hours_26k_steps']:.2f} h"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
