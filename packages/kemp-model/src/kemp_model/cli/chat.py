"""`kemp-model chat`: talk to a trained run, one message per line (a terminal or a pipe)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from kemp_model.cli.app import app
from kemp_model.cli.evaluate import (
    BEAM_OPTION,
    DECODE_OPTION,
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

if TYPE_CHECKING:
    from kemp_model.chat import ChatReply

HELP_LINE = "Type a message and press Enter; /help lists the commands."
#: Chat commands, handled here and never sent to the model: name -> what it does.
COMMANDS = {
    "/help": "show these commands",
    "/reset": "forget the conversation and start a new one",
    "/quit": "leave (so do /exit, Ctrl-D and the end of piped input)",
}
#: Where the line history of interactive sessions is kept (Up/Down recall earlier messages).
HISTORY_FILE = Path("~/.kemp_chat_history")


def _messages(interactive: bool, out: Console) -> Iterator[str]:
    """The user's lines: with line editing and a kept history on a terminal, else stdin lines."""
    if not interactive:
        yield from sys.stdin
        return
    try:
        import readline  # noqa: F401  (gives input() line editing and Up/Down history)
    except ImportError:  # Windows without pyreadline: plain input()
        readline = None
    history = HISTORY_FILE.expanduser()
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        readline.set_history_length(1000)
    try:
        while True:
            try:
                yield input("you> ")
            except EOFError:
                out.print()
                return
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass


@app.command("chat")
def chat_command(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="Run folder written by `kemp-model train`."
    ),
    index: Path = typer.Option(
        None,
        "--index",
        help="Knowledge index folder (default: the one recorded when the run's graphs were "
        "enriched; checked against the checksum recorded then).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    decode: Decode = DECODE_OPTION,
    beam_size: int = BEAM_OPTION,
    no_repeat_ngram: int = NGRAM_OPTION,
    top_k: int = TOPK_OPTION,
    top_p: float = TOPP_OPTION,
    temperature: float = TEMP_OPTION,
    length_penalty: float = LP_OPTION,
    max_len: int = MAXLEN_OPTION,
    seed: int = SEED_OPTION,
    max_history_turns: int = typer.Option(
        16, "--max-history-turns", min=1, help="Keep the newest N turns of the conversation."
    ),
    max_message_chars: int = typer.Option(
        1000, "--max-message-chars", min=1, help="Refuse (and skip) a longer message."
    ),
) -> None:
    """Chat with a model: see the predicted emotion, the injected concepts and the response.

    The history grows turn by turn. Commands (never sent to the model): /help lists them,
    /reset starts a new conversation, /quit (or Ctrl-D, or the end of piped input) leaves. On a
    terminal, Up/Down recall earlier messages (kept in ~/.kemp_chat_history); a piped file of
    messages, one per line, is answered too. Concepts are shown the turn they first appear.

    Needs kemp-kg's text pipeline and its NLTK data (stopwords, averaged_perceptron_tagger_eng,
    wordnet), read from NLTK_DATA (default ~/nltk_data) and fetched there once when missing.

    \b
    Example: kemp-model chat runs/kemp --index index/ --decode diverse
    """
    from kemp_model.chat import ChatConfig, ChatSession

    config = ChatConfig(
        run_dir=run_dir,
        index_dir=index,
        decode=decode_config(
            decode,
            beam_size,
            no_repeat_ngram,
            top_k,
            top_p,
            temperature,
            length_penalty,
            max_len,
            seed,
        ),
        device=device,
        max_history_turns=max_history_turns,
        max_message_chars=max_message_chars,
    )
    session = ChatSession.open(config)
    # a line that is not UTF-8 is skipped with a note, not a traceback that ends the session
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="surrogateescape")
    out = Console(highlight=False)
    for note in session.notes:
        Console(stderr=True, highlight=False).print(f"[yellow]warning:[/] {escape(note)}")
    interactive = sys.stdin.isatty()
    out.print(f"[dim]{HELP_LINE}[/]")
    replies = 0
    for line in _messages(interactive, out):
        message = line.strip()
        if not message:
            continue
        if message.startswith("/"):
            command = message.split()[0].lower()
            if command in ("/quit", "/exit"):
                break
            if command == "/reset":
                session.reset()
                out.print("[dim](new conversation)[/]")
            elif command == "/help":
                for name, text in COMMANDS.items():
                    out.print(f"  [bold]{name:<7}[/] {text}")
            else:
                out.print(f"[dim]unknown command {escape(command)}; /help lists them[/]")
            continue
        if any("\udc80" <= ch <= "\udcff" for ch in message):
            out.print("[yellow]skipped:[/] that line is not UTF-8 text")
            continue
        if not interactive:
            shown = message
            if len(message) > 200:
                shown = f"{message[:200]}… ({len(message):,} chars)"
            out.print(f"[bold]you>[/] {escape(shown)}")
        try:
            reply = session.respond(message)
        except ValueError as exc:  # too long: the session and its history go on unchanged
            out.print(f"[yellow]skipped:[/] {escape(str(exc))}")
            continue
        replies += 1
        if reply.emotions:
            shown = " | ".join(f"{name} {p:.2f}" for name, p in reply.emotions)
            out.print(f"  [cyan]emotion:[/] {shown}")
        if session.knowledge:
            out.print(f"  [cyan]concepts:[/] {_concepts_line(reply)}")
        out.print(f"[bold green]kemp>[/] {escape(reply.response) or '[dim](no words)[/]'}")
    out.print(f"[dim]{replies} replies[/]")


def _concepts_line(reply: ChatReply) -> str:
    """This turn's new concepts (``word -> concept (relation, intensity)``), and how many
    injected concepts were already shown earlier in the conversation."""
    shown = ", ".join(
        f"{escape(w) + ' -> ' if w else ''}{escape(c)} ({r}, {i:.2f})"
        for w, c, r, i in reply.new_concepts
    )
    earlier = len(reply.concepts) - len(reply.new_concepts)
    if earlier:
        shown += f"{' ' if shown else ''}[dim](+{earlier} from earlier turns)[/]"
    return shown or "(none)"
