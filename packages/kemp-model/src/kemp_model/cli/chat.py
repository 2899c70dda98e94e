"""`kemp-model chat`: talk to a trained run, one message per line (a terminal or a pipe)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from kemp_model.cli.app import app
from kemp_model.cli.evaluate import (
    BEAM_OPTION,
    LP_OPTION,
    MAXLEN_OPTION,
    NGRAM_OPTION,
    SEED_OPTION,
    TEMP_OPTION,
    TOPK_OPTION,
    TOPP_OPTION,
    Decode,
    decode_config,
)

HELP_LINE = "Type a message and press Enter. /reset starts a new conversation, /quit leaves."


@app.command("chat")
def chat_command(
    run_dir: Path = typer.Argument(..., help="Run folder written by `kemp-model train`."),
    index: Path = typer.Option(
        None, "--index", help="Knowledge index (default: the one the run's graphs were built with)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    decode: Decode = typer.Option(
        Decode.greedy, "--decode", help="Decoding preset: greedy, beam, topk, topp or diverse."
    ),
    beam_size: int = BEAM_OPTION,
    no_repeat_ngram: int = NGRAM_OPTION,
    top_k: int = TOPK_OPTION,
    top_p: float = TOPP_OPTION,
    temperature: float = TEMP_OPTION,
    length_penalty: float = LP_OPTION,
    max_len: int = MAXLEN_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Chat with a model: see the predicted emotion, the injected concepts and the response.

    The history grows turn by turn; /reset clears it, /quit (or end of input) leaves. Reads
    standard input, so it also answers a piped file of messages, one per line.

    Example: kemp-model chat runs/kemp --index index/ --decode diverse
    """
    from kemp_model.chat import ChatConfig, ChatSession

    config = ChatConfig(
        run_dir=run_dir,
        index_dir=index,
        decode=decode_config(decode, beam_size, no_repeat_ngram, top_k, top_p, temperature,
                             length_penalty, max_len, seed),  # fmt: skip
        device=device,
    )
    session = ChatSession.open(config)
    out = Console(highlight=False)
    interactive = sys.stdin.isatty()
    out.print(f"[dim]{HELP_LINE}[/]")
    replies = 0
    while True:
        if interactive:
            out.print("[bold]you>[/] ", end="")
        line = sys.stdin.readline()
        if not line:  # end of input
            break
        message = line.strip()
        if not message:
            continue
        if message == "/quit":
            break
        if message == "/reset":
            session.reset()
            out.print("[dim](new conversation)[/]")
            continue
        if not interactive:
            out.print(f"[bold]you>[/] {escape(message)}")
        reply = session.respond(message)
        replies += 1
        if reply.emotions:
            shown = " | ".join(f"{name} {p:.2f}" for name, p in reply.emotions)
            out.print(f"  [cyan]emotion:[/] {shown}")
        if reply.concepts:
            shown = ", ".join(
                f"{escape(w)} -> {escape(c)} ({r}, {i:.2f})" for w, c, r, i in reply.concepts
            )
            out.print(f"  [cyan]concepts:[/] {shown}")
        else:
            out.print("  [cyan]concepts:[/] (none)")
        out.print(f"[bold green]kemp>[/] {escape(reply.response)}")
    out.print(f"[dim]{replies} replies[/]")
