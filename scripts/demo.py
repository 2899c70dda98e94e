"""`just demo`: the whole pipeline on the built-in sample, then what it showed and what to run next.

    python scripts/demo.py [--out work/demo] [--steps 600]

Runs the project's own commands (each echoed as ``$ command``) from the virtual environment this
Python belongs to: ``kemp-kg sample``, ``build-index``, ``query``, ``enrich``, ``inspect``,
``kemp-model train --preset tiny``, ``generate`` on held-out test conversations and ``chat`` with
messages shaped like the sample's own, then prints a short explanation. The figures in it (sizes,
steps, emotions guessed right) are read from what the commands wrote, not typed in.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

#: Messages like the sample's training conversations, with the emotion of the one each echoes.
CHAT_MESSAGES: tuple[tuple[str, str], ...] = (
    ("My old dog died last week.", "sad"),
    ("I got a puppy for my birthday!", "joyful"),
    ("My daughter had her graduation today.", "proud"),
    ("Last night I heard a noise downstairs.", "afraid"),
)


def run(command: list[str], *, stdin: str | None = None) -> str:
    """Run one command, echoing it and its output; stop the demo when it fails."""
    shown = [os.path.relpath(c) if os.path.isabs(c) else c for c in command]
    print(f"$ {shlex.join(shown)}", flush=True)
    proc = subprocess.run(command, input=stdin, text=True, stdout=subprocess.PIPE)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        sys.exit(f"demo stopped: `{shlex.join(command)}` exited with {proc.returncode}")
    return proc.stdout


def parameters(weights: Path) -> int:
    """Parameters in a safetensors file (from its header)."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as handle:
        return sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())


def chat_emotions(output: str) -> list[str]:
    """The top emotion of each reply in ``kemp-model chat`` output."""
    return re.findall(r"emotion: (\w+) ", output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("work/demo"), help="Scratch folder.")
    parser.add_argument("--steps", type=int, default=600, help="Training steps of the demo model.")
    args = parser.parse_args(argv)
    out: Path = args.out
    bindir = Path(sys.executable).parent
    kg, model = str(bindir / "kemp-kg"), str(bindir / "kemp-model")
    index, graphs, run_dir = out / "index", out / "graphs.arrow", out / "run"

    run([kg, "sample", "--to", str(out), "--force"])
    run(
        [
            kg,
            "build-index",
            str(out / "knowledge.tsv"),
            "--lexicon",
            str(out / "lexicon.tsv"),
            "--index",
            str(index),
            "--force",
        ]
    )
    run([kg, "query", "happy", "--index", str(index), "--top", "8"])
    run([kg, "enrich", str(out / "dialogues.jsonl"), "--index", str(index), "--out", str(graphs)])
    run([kg, "inspect", str(graphs), "--example", "0"])
    # one validation at the end: with 40 training conversations the validation perplexity only
    # rises after the first steps, and early stopping would keep a model that learned nothing
    run(
        [
            model,
            "train",
            "--graphs",
            str(graphs),
            "--preset",
            "tiny",
            "--max-steps",
            str(args.steps),
            "--eval-every",
            str(args.steps),
            "--out",
            str(run_dir),
            "--force",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    run([model, "generate", str(run_dir), "--split", "test", "--limit", "3"])
    chat = run(
        [model, "chat", str(run_dir)],
        stdin="".join(f"{message}\n/reset\n" for message, _ in CHAT_MESSAGES),
    )

    from kemp_kg import schema

    examples = schema.open_graphs(graphs).provenance.get("examples", {})
    guessed = chat_emotions(chat)
    right = sum(got == want for got, (_, want) in zip(guessed, CHAT_MESSAGES, strict=False))
    size = parameters(run_dir / "best.safetensors")
    print(f"""
What you just saw
  1. sample, build-index, query: a small knowledge graph and emotion lexicon written for kemp
     became a knowledge index; `query happy` lists what it would inject for "happy".
  2. enrich, inspect: every listener turn of the sample's conversations became one example
     ({examples.get("train", "?")} train, {examples.get("valid", "?")} valid, \
{examples.get("test", "?")} test): its history, the concepts found for
     its words, and the graph joining them.
  3. train: the `tiny` preset ({size:,} parameters), {args.steps} steps, seconds on a CPU.
  4. generate, on test conversations it never saw: mostly babble, and that is expected; a
     model this small, trained this briefly on {examples.get("train", "?")} examples, cannot \
write new replies (the
     huge validation perplexity says the same).
  5. chat, with messages like the training conversations: it named the emotion right for
     {right} of {len(CHAT_MESSAGES)}, and its replies echo what the sample's listeners said. \
It learned from the
     data; it did not learn English.

What to run next
  Talk to this model (/help lists the chat commands):
    .venv/bin/kemp-model chat {run_dir}
  Your own dialogues (format and the 32 emotion labels: README, "Dialogue formats"):
    .venv/bin/kemp-kg enrich dialogues.json --index {index} --out mine.arrow
    .venv/bin/kemp-model train --graphs mine.arrow --preset tiny --out runs/mine
    .venv/bin/kemp-model chat runs/mine
  The real model on EmpatheticDialogues (README, "Real data" and "Training"; hours on a CPU):
    .venv/bin/kemp-kg download all --to data/   then build-index, enrich, train --preset kemp
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
