"""`kemp-kg download`: fetch, verify and unpack the real data sets."""

from __future__ import annotations

import enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kemp_kg.cli.app import app
from kemp_kg.download import NAMES, DownloadConfig, download


class DataSet(str, enum.Enum):
    """The names `kemp-kg download` accepts."""

    conceptnet = "conceptnet"
    empathetic_dialogues = "empathetic-dialogues"
    nrc_vad = "nrc-vad"
    glove = "glove"
    all = "all"


@app.command("download")
def download_command(
    names: list[DataSet] = typer.Argument(
        ...,
        metavar="NAME",
        help="What to fetch: conceptnet, empathetic-dialogues, nrc-vad, "
        "glove, or all (several allowed).",
    ),
    to: Path = typer.Option(Path("data"), "--to", help="Download folder."),
    mirror: str = typer.Option(
        None, "--mirror", help="A folder holding the files by name, or an http(s):// base URL."
    ),
    sha256: str = typer.Option(
        None, "--sha256", help="Verify against this SHA-256 instead of the manifest's (one name)."
    ),
    extract: bool = typer.Option(True, "--extract/--no-extract", help="Unpack tar/zip archives."),
    retries: int = typer.Option(5, "--retries", min=0, help="Retries per URL on network errors."),
    timeout: float = typer.Option(60.0, "--timeout", help="Socket timeout in seconds."),
) -> None:
    """Download the official data sets into --to, resumably, verified, safely extracted.

    \b
    Example: kemp-kg download nrc-vad empathetic-dialogues --to data/

    \b
    Offline: kemp-kg download all --mirror /mnt/datasets   (the files, by name, in that folder)
    """
    chosen = NAMES if DataSet.all in names else tuple(dict.fromkeys(n.value for n in names))
    try:
        config = DownloadConfig(
            names=chosen,
            to=to,
            mirror=mirror,
            sha256=sha256,
            extract=extract,
            retries=retries,
            timeout_s=timeout,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    results = download(config)
    table = Table(title=f"kemp-kg download -> {to}")
    for column in ("data set", "file", "bytes", "sha256", "status", "extracted to"):
        table.add_column(column)
    for result in results:
        status = "[green]verified[/]" if result.verified else "[yellow]UNVERIFIED[/]"
        status += ", fetched" if result.fetched else ", already here"
        table.add_row(
            result.name,
            str(result.path),
            f"{result.bytes:,}",
            result.sha256 if not result.verified else result.sha256[:16] + "…",
            status,
            str(result.extracted_to or "-"),
        )
    console = Console()
    console.print(table)
    for result in results:
        for note in result.notes:
            console.print(f"  {result.name}: {note}", highlight=False)
        if not result.verified:
            console.print(
                f"  {result.name}: no published checksum to compare against; this SHA-256 was "
                f"computed here. Pin it: kemp-kg download {result.name} --sha256 {result.sha256}",
                highlight=False,
            )
