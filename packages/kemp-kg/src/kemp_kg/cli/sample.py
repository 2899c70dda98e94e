"""`kemp-kg sample`: copy the built-in sample (knowledge, lexicon, dialogues) into a folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kemp_kg.cli.app import app
from kemp_kg.samples_data import write_samples

out = Console()


@app.command("sample")
def sample_command(
    to: Path = typer.Option(..., "--to", help="Folder to write the sample files into."),
    force: bool = typer.Option(False, "--force", help="Overwrite files already there."),
) -> None:
    """Write the built-in sample: knowledge.tsv, lexicon.tsv and dialogues.jsonl (for `just demo`).

    \b
    Example: kemp-kg sample --to work/demo && kemp-kg build-index work/demo/knowledge.tsv
    --lexicon work/demo/lexicon.tsv --index work/demo/index
    """
    written = write_samples(to, force=force)
    table = Table(title=f"sample written to {to}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    table.add_column("lines", justify="right")
    for path in written:
        data = path.read_bytes()
        lines = data.count(b"\n")
        table.add_row(path.name, f"{len(data):,}", f"{lines:,}")
    out.print(table)
