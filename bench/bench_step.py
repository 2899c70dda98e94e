"""A training step of the faithful ``kemp`` preset: kemp-model's step vs a naive loop of the SAME
model, in the same run.

    .venv/bin/python bench/bench_step.py [--graphs FILE] [--preset kemp] [--steps 30] [--threads 1]

* ``ours``: what ``kemp-model train`` runs: the vocabulary projection, the copy mixture and the
  label smoothing only at the batch's real target positions (:meth:`KEMP.target_log_probs`), the
  loss from sums (:class:`kemp_model.loss.Loss`), Adam with its fused kernel.
* ``naive``: the official code's way with the same weights: the copy-mixed distribution at EVERY
  target position (padding included, ``[B, T, V]``), MoEL's label smoothing as a dense target
  distribution and ``KLDivLoss(reduction='sum')``, plain Adam.

Both run on the same length-bucketed batches of the same file, alternating step by step in one
process (``paired``: the ratio is the headline; the machine's load drifts, so separate runs are
not compared), then each arm alone in a fresh process under ``/usr/bin/time -v`` for its peak RSS.
The projected wall time of the paper's 26,000 steps of 16 follows from each arm's examples/s.
Without ``--graphs`` the ED graph file at ``$KEMP_SCRATCH/enrich/ed.arrow`` is used, else an
ED-sized synthetic file (bench/synthetic_graphs.py). Writes ``bench/results/step.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from _paths import repo_relative  # bench/ is sys.path[0] when run as a script

HERE = Path(__file__).resolve().parent
SCRATCH = Path(os.environ.get("KEMP_SCRATCH", HERE.parent / "work" / "scratch"))
REAL_ED = SCRATCH / "enrich" / "ed.arrow"
PAPER_STEPS, PAPER_BATCH = 26_000, 16


def _setup(args):
    import numpy as np
    import torch

    from kemp_model.config import get_preset
    from kemp_model.data import BatchSampler, load_split
    from kemp_model.loss import Loss
    from kemp_model.model import KEMP

    torch.set_num_threads(args.threads)
    data, vocab, _ = load_split(args.graphs, "train")
    preset = get_preset(args.preset)
    plans = list(BatchSampler(data.sizes(), batch_size=PAPER_BATCH, seed=args.seed))
    total = args.warmup + args.steps
    batches = [data.collate(torch.from_numpy(np.asarray(p))) for p in plans[:total]]

    def build(fused: bool):
        torch.manual_seed(args.seed)
        model = KEMP(preset.model, len(vocab))
        tc = preset.train
        optimizer = torch.optim.Adam(
            model.parameters(), lr=1e-4, betas=tc.adam_betas, eps=tc.adam_eps, fused=fused
        )
        return model, optimizer

    return preset, Loss(preset.loss, len(vocab)), batches, build, len(vocab)


def step_ours(model, optimizer, objective, batch) -> None:
    out = model(batch, smoothing=objective.smoothing)
    objective(out, out.token_count.clamp(min=1), out.example_count.clamp(min=1)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_naive(model, optimizer, objective, batch) -> None:
    """The official code's step: full [B, T, V] mixture, dense smoothed targets, summed KL."""
    import torch
    import torch.nn.functional as F

    from kemp_kg import schema
    from kemp_model.model import emotional_attention_loss

    cfg = objective.config
    state = model.encode(batch)
    target = batch.target
    prefix = torch.cat([torch.full_like(target[:, :1], schema.SOS_ID), target[:, :-1]], dim=1)
    log_probs, weights = model.decode(state, prefix)  # [B, T, V] at every position
    flat, gold = log_probs.reshape(-1, log_probs.shape[-1]), target.reshape(-1)
    true = torch.full_like(flat, cfg.label_smoothing / (flat.shape[1] - 2))
    true.scatter_(1, gold[:, None], 1 - cfg.label_smoothing)
    true[:, schema.PAD_ID] = 0
    true[gold == schema.PAD_ID] = 0
    loss = F.kl_div(flat, true, reduction="sum")
    if model.config.emotion_classifier:
        loss = loss + cfg.emotion_weight * F.cross_entropy(
            state.emotion_logits, batch.emotion, reduction="sum"
        )
    if model.config.attention_loss:
        tokens = target != schema.PAD_ID
        att = emotional_attention_loss(weights, tokens, state.intensity, state.memory_mask).mean()
        loss = loss + cfg.attention_weight * att
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def arm_paired(args) -> dict:
    _, objective, batches, build, vocab_size = _setup(args)
    arms = {"ours": (step_ours, build(True)), "naive": (step_naive, build(False))}
    spent = {name: 0.0 for name in arms}
    cpu = {name: 0.0 for name in arms}
    for i, batch in enumerate(batches):
        for name, (step, (model, optimizer)) in arms.items():
            model.train()
            wall, clock = time.perf_counter(), time.process_time()
            step(model, optimizer, objective, batch)
            if i >= args.warmup:
                spent[name] += time.perf_counter() - wall
                cpu[name] += time.process_time() - clock
    model = arms["ours"][1][0]
    result = {"vocab_size": vocab_size, "parameters": model.parameter_counts()}
    for name in arms:
        speed = args.steps * PAPER_BATCH / spent[name]
        result[name] = {
            "examples_per_s": speed,
            "step_s": spent[name] / args.steps,
            "cpu_s_per_step": cpu[name] / args.steps,
            "paper_schedule_hours": PAPER_STEPS * PAPER_BATCH / speed / 3600,
        }
    result["speedup_vs_naive"] = spent["naive"] / spent["ours"]
    result["cpu_speedup_vs_naive"] = cpu["naive"] / cpu["ours"]
    return result


def arm_alone(args, name: str) -> dict:
    _, objective, batches, build, _ = _setup(args)
    model, optimizer = build(name == "ours")
    step = step_ours if name == "ours" else step_naive
    model.train()
    started = None
    for i, batch in enumerate(batches):
        if i == args.warmup:
            started = time.perf_counter()
        step(model, optimizer, objective, batch)
    return {"examples_per_s": args.steps * PAPER_BATCH / (time.perf_counter() - started)}


def run_alone(name: str, args) -> dict:
    """Arm ``name`` in a fresh process under /usr/bin/time -v: its speed and peak RSS."""
    command = [
        sys.executable,
        __file__,
        "--arm",
        name,
        "--graphs",
        str(args.graphs),
        "--preset",
        args.preset,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True
    )
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return {
        **json.loads(done.stdout.strip().splitlines()[-1]),
        "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=Path)
    parser.add_argument("--preset", default="kemp")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arm", choices=["ours", "naive"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "step.json")
    args = parser.parse_args()
    if args.graphs is None:
        if REAL_ED.is_file():
            args.graphs = REAL_ED
        else:
            args.graphs = SCRATCH / "bench_step" / "synthetic.arrow"
            if not args.graphs.is_file():
                args.graphs.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [sys.executable, str(HERE / "synthetic_graphs.py"), str(args.graphs)],
                    check=True,
                )
    if args.arm:
        print(json.dumps(arm_alone(args, args.arm)))
        return
    paired = arm_paired(args)
    alone = {name: run_alone(name, args) for name in ("ours", "naive")}
    result = {
        "command": " ".join(["python", "bench/bench_step.py", *sys.argv[1:]]),
        "graphs": repo_relative(str(args.graphs)),
        "preset": args.preset,
        "batch": PAPER_BATCH,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "paired": paired,
        "alone": alone,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(repo_relative(json.dumps(result, indent=2)) + "\n")
    ours, naive = paired["ours"], paired["naive"]
    print(
        f"preset {args.preset} ({paired['parameters']['total']:,} parameters, V={paired['vocab_size']:,}), "
        f"batch {PAPER_BATCH}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"ours : {ours['examples_per_s']:7.1f} ex/s, {ours['cpu_s_per_step']:.3f} CPU-s/step, "
        f"26k steps ~{ours['paper_schedule_hours']:.1f} h, peak {alone['ours']['peak_rss_mb']:.0f} MB"
    )
    print(
        f"naive: {naive['examples_per_s']:7.1f} ex/s, {naive['cpu_s_per_step']:.3f} CPU-s/step, "
        f"26k steps ~{naive['paper_schedule_hours']:.1f} h, peak {alone['naive']['peak_rss_mb']:.0f} MB"
    )
    print(
        f"speed-up vs naive: {paired['speedup_vs_naive']:.2f}x wall, {paired['cpu_speedup_vs_naive']:.2f}x CPU"
    )
    print(f"wrote {repo_relative(str(args.out))}")


if __name__ == "__main__":
    main()
