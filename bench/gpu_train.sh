#!/usr/bin/env bash
# One short GPU benchmark for a GPU window (about 5 minutes on one H100), run from the repo root:
#
#   bash bench/gpu_train.sh [GRAPHS.arrow]
#
# Records, for the `kemp` preset: training examples/s and peak GPU memory at batch 16 (fp32 and
# bf16 autocast) and at the largest batch that fits (doubling until out-of-memory, sized on the
# LONGEST rows so every real batch fits), then runs `kemp-model train` end to end for 300 steps
# on the GPU (bf16, pinned batches) as a smoke test. Needs a CUDA build of torch plus pyarrow and
# numpy; the packages are used from the source tree (PYTHONPATH), nothing is installed or fetched.
# Without GRAPHS it writes an ED-sized synthetic file (bench/synthetic_graphs.py).
# Output: $OUT/gpu_train.json (or bench/results/gpu_train.json) and the log on stdout.
# Environment: PYTHON (default python3), DEVICE (default cuda; `cpu` only to dry-run the script),
# STEPS (timed steps per setting, default 30), MAX_BATCH (default 4096), COMPILE (1: also time
# per-layer torch.compile at batch 16; 0: skip), E2E_STEPS (default 300).
# PAPER_RUN=1 then trains the `kemp` preset on the paper's schedule (batch 16, at most 26,000
# steps, official early stopping) with VECTORS (a GloVe .npy + .vocab.txt, optional; cut it to
# the graph file's words to carry it) and evaluates it on the test split (greedy): wall time,
# peak GPU memory and the test figures land in $OUT/gpu_paper_run.json. PAPER_STEPS and
# EVAL_LIMIT cap the run and the evaluation (for a CPU dry run of the script).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/packages/kemp-kg/src:$PWD/packages/kemp-model/src${PYTHONPATH:+:$PYTHONPATH}"
RESULTS=${OUT:-bench/results}
WORK=${TMPDIR:-/tmp}/kemp_gpu_bench
mkdir -p "$RESULTS" "$WORK"
GRAPHS=${1:-}
if [ -z "$GRAPHS" ]; then
  GRAPHS="$WORK/synthetic.arrow"
  [ -f "$GRAPHS" ] || "$PY" bench/synthetic_graphs.py "$GRAPHS"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

"$PY" - "$GRAPHS" "$RESULTS/gpu_train.json" <<'PYEOF'
import json, os, sys, time
import torch
from kemp_model.config import kemp
from kemp_model.data import BatchSampler, load_split
from kemp_model.loss import Loss
from kemp_model.model import KEMP

graphs, out_path = sys.argv[1], sys.argv[2]
device = torch.device(os.environ.get("DEVICE", "cuda"))
steps = int(os.environ.get("STEPS", "30"))
max_batch = int(os.environ.get("MAX_BATCH", "4096"))
cuda = device.type == "cuda"
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
data, vocab, _ = load_split(graphs, "train")
preset = kemp()
order = torch.argsort(data.sizes(), descending=True)


def sync():
    if cuda:
        torch.cuda.synchronize()


def run(batch_size, bf16, worst_case=False, compiled=False):
    """(examples/s, peak GiB) for `steps` timed steps after the warm-up steps."""
    torch.manual_seed(0)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = KEMP(preset.model, len(vocab)).to(device)
    loss = Loss(preset.loss, len(vocab))
    if compiled:
        model.compile_layers()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    if worst_case:  # the longest rows: if this fits, every batch of the epoch fits
        plans = [order[:batch_size].numpy()] * (5 + steps)
    else:
        plans = list(BatchSampler(data.sizes(), batch_size=batch_size, seed=0))
        plans = (plans * (1 + (5 + steps) // max(len(plans), 1)))[: 5 + steps]
    cpu_batches = [data.collate(torch.from_numpy(p)) for p in plans]
    if cuda:
        cpu_batches = [b.pin_memory() for b in cpu_batches]
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if (bf16 and cuda) else None
    for i, cpu_batch in enumerate(cpu_batches):
        if i == 5:
            sync()
            start = time.perf_counter()
        batch = cpu_batch.to(device, non_blocking=True)
        if ctx:
            with ctx():
                out = model(batch, smoothing=loss.smoothing)
        else:
            out = model(batch, smoothing=loss.smoothing)
        loss(out, out.token_count, out.example_count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return steps * batch_size / elapsed, peak


results = {"device": torch.cuda.get_device_name(device) if cuda else "cpu",
           "torch": torch.__version__, "graphs": graphs, "rows": len(data), "steps": steps,
           "settings": []}
for bf16 in (False, True):
    speed, peak = run(16, bf16)
    results["settings"].append({"batch": 16, "bf16": bf16, "examples_per_s": speed, "peak_gib": peak})
    print(f"batch 16 bf16={bf16}: {speed:,.0f} examples/s, peak {peak:.2f} GiB", flush=True)
if os.environ.get("COMPILE", "1") == "1":  # per-layer torch.compile; warm-up covers compilation
    speed, peak = run(16, True, compiled=True)
    results["settings"].append({"batch": 16, "bf16": True, "compile": True, "examples_per_s": speed,
                                "peak_gib": peak})
    print(f"batch 16 bf16 compiled: {speed:,.0f} examples/s, peak {peak:.2f} GiB", flush=True)

largest = None
batch = 32
while batch <= max_batch:
    try:
        run(batch, True, worst_case=True)  # fits with the longest rows?
        speed, peak = run(batch, True)
    except torch.cuda.OutOfMemoryError:
        print(f"batch {batch}: out of memory", flush=True)
        break
    largest = {"batch": batch, "bf16": True, "examples_per_s": speed, "peak_gib": peak}
    results["settings"].append(largest)
    print(f"batch {batch} bf16: {speed:,.0f} examples/s, peak {peak:.2f} GiB", flush=True)
    batch *= 2
results["largest_batch"] = largest
best = max(results["settings"], key=lambda r: r["examples_per_s"])
results["paper_schedule_minutes"] = 26_000 * 16 / best["examples_per_s"] / 60
print(f"26,000 x 16 examples at {best['examples_per_s']:,.0f} ex/s (batch {best['batch']}): "
      f"{results['paper_schedule_minutes']:.1f} min", flush=True)
with open(out_path, "w") as handle:
    json.dump(results, handle, indent=2)
print(f"wrote {out_path}")
PYEOF

# End to end through the CLI on the GPU (bf16, pinned batches, checkpoints, validation).
rm -rf "$WORK/run"
"$PY" -c "from kemp_model.cli import main; main()" train --graphs "$GRAPHS" --preset kemp \
  --out "$WORK/run" --device "${DEVICE:-cuda}" --bf16 --batch-size 64 --max-steps "${E2E_STEPS:-300}" \
  --eval-every 150 --eval-examples 1024 --no-progress
cp "$WORK/run/metrics.jsonl" "$RESULTS/gpu_train_e2e_metrics.jsonl"

if [ "${PAPER_RUN:-0}" = "1" ]; then
  rm -rf "$WORK/paper"
  VECTOR_FLAGS=()
  [ -n "${VECTORS:-}" ] && VECTOR_FLAGS=(--embeddings "$VECTORS")
  START=$(date +%s)
  "$PY" -c "from kemp_model.cli import main; main()" train --graphs "$GRAPHS" --preset kemp \
    --out "$WORK/paper" --device "${DEVICE:-cuda}" --bf16 --no-progress "${VECTOR_FLAGS[@]}" \
    --max-steps "${PAPER_STEPS:-26000}"
  TRAINED=$(date +%s)
  LIMIT_FLAGS=()
  [ -n "${EVAL_LIMIT:-}" ] && LIMIT_FLAGS=(--limit "$EVAL_LIMIT")
  "$PY" -c "from kemp_model.cli import main; main()" evaluate "$WORK/paper" --split test \
    --device "${DEVICE:-cuda}" --batch-size 256 "${LIMIT_FLAGS[@]}"
  "$PY" - "$WORK/paper" "$RESULTS/gpu_paper_run.json" "$((TRAINED - START))" <<'PYEOF'
import json, sys
from pathlib import Path
run, out, seconds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
metrics = json.loads((run / "eval" / "test-greedy.metrics.json").read_text())
valid = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"valid"' in l]
json.dump({"train_wall_s": seconds, "valid": valid, "test": metrics}, open(out, "w"), indent=2)
print(f"paper schedule: {seconds} s; test perplexity per example {metrics['perplexity_per_example']:.2f}, "
      f"pooled {metrics['perplexity_pooled']:.2f}, accuracy {metrics['emotion_accuracy']}")
PYEOF
  cp "$WORK/paper/metrics.jsonl" "$RESULTS/gpu_paper_run_metrics.jsonl"
fi
