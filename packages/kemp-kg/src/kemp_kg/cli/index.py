"""`kemp-kg build-index` and `kemp-kg query`: build the knowledge index, look a word up in it."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kemp_kg import schema
from kemp_kg.cli.app import app
from kemp_kg.index import (
    MAX_THREADS,
    SOURCE_DIGEST,
    BuildOptions,
    build_index,
    is_index_folder,
    open_index,
    resolve_source,
)
from kemp_kg.wordnet_source import wordnet_rules as wordnet_rules_named

out = Console()
err = Console(stderr=True)


def _progress_reporter(total_bytes: int):
    """A rich progress display (bytes read, ETA) and the callback build_index calls."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = progress.add_task("starting", total=total_bytes or None)

    def report(stage: str, fraction: float | None) -> None:
        if fraction is None:
            progress.update(task, description=stage)
        else:
            progress.update(task, description=stage, completed=int(fraction * total_bytes))

    return progress, report


@app.command("build-index")
def build_index_command(
    source: str = typer.Argument(
        ...,
        metavar="SOURCE",
        help="ConceptNet assertions dump (.csv / .csv.gz), 'wordnet' (NLTK WordNet 3.0, read "
        "from NLTK_DATA: corpora/wordnet), or a triples file (.tsv with header head, relation, "
        "tail, weight; or .parquet).",
    ),
    lexicon: Path | None = typer.Option(
        None,
        "--lexicon",
        help="NRC-VAD lexicon (NRC-VAD-Lexicon.txt layout). Without it every intensity is 0 and "
        "the manifest records no lexicon.",
    ),
    index: Path = typer.Option(Path("index"), "--index", help="Index folder to create."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the input is unchanged."),
    memory_limit: str = typer.Option(
        "3GB", "--memory-limit", help="DuckDB memory limit (e.g. 3GB, 500MB, 80%)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        max=MAX_THREADS,
        help=f"DuckDB threads, 1..{MAX_THREADS} (default: all cores).",
    ),
    wordnet_rules: str = typer.Option(
        "sense",
        "--wordnet-rules",
        help="For 'wordnet': 'sense' (frequent senses, SemCor-weighted, read word -> concept) or "
        "'conceptnet' (every sense, weights 2.0/1.0, read both ways: the earlier mapping).",
    ),
    max_senses: int | None = typer.Option(
        None,
        "--wordnet-max-senses",
        min=1,
        help="'sense' rules: a word keeps at most its first N senses per POS (default 3).",
    ),
    min_share: float | None = typer.Option(
        None,
        "--wordnet-min-share",
        min=0.0,
        max=1.0,
        help="'sense' rules: a later sense needs (count+1)/(top count+1) >= this (default 0.25).",
    ),
    all_senses: bool = typer.Option(
        False,
        "--wordnet-all-senses",
        help="'sense' rules: keep every sense (still weighted by frequency).",
    ),
    merge_proper_nouns: bool = typer.Option(
        False,
        "--wordnet-merge-proper-nouns",
        help="'sense' rules: count capitalised/instance senses (Job, Paris) as senses of the "
        "lowercase word too.",
    ),
) -> None:
    """Build the knowledge index (DuckDB + Parquet + manifest.json) from SOURCE and a lexicon.

    \b
    Example: kemp-kg build-index conceptnet-assertions-5.7.0.csv.gz --lexicon
    NRC-VAD-Lexicon.txt --index index/
    """
    try:
        rules = wordnet_rules_named(wordnet_rules)
        if rules.preset == "sense":
            rules = rules.replace(
                max_senses=max_senses,
                min_share=min_share,
                senses="all" if all_senses else None,
                proper_nouns="merge" if merge_proper_nouns else None,
            )
        elif (max_senses, min_share, all_senses, merge_proper_nouns) != (None, None, False, False):
            raise ValueError("the --wordnet-* sense options apply to --wordnet-rules sense only")
        options = BuildOptions(memory_limit=memory_limit, threads=threads, wordnet=rules)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    spec = resolve_source(source)
    if lexicon is None:
        err.print("[yellow]warning:[/] no --lexicon: every concept intensity will be 0")
    started = time.perf_counter()
    progress, report = _progress_reporter(spec.bytes)
    inputs = [p for p in (spec.path if spec.kind != "wordnet" else None, lexicon) if p]
    with (
        schema.claim_output(
            index,
            inputs=inputs,
            folder=True,
            replaces_folder=True,
            ours=is_index_folder,
            what="knowledge index",
            force=force,
            flag="--index",
        ),
        progress,
    ):
        manifest = build_index(
            source, lexicon, index, force=force, options=options, progress=report
        )
    seconds = time.perf_counter() - started
    if not manifest.get("rebuilt", True):
        out.print(
            f"[green]{index}[/]: already built from the same input "
            f"({SOURCE_DIGEST} {manifest['source'][SOURCE_DIGEST][:12]}...); nothing to do "
            "(use --force to rebuild)"
        )
        return
    table = Table(title=f"knowledge index {index}", show_header=False)
    table.add_row("source", f"{manifest['source']['kind']}: {manifest['source']['path']}")
    table.add_row(f"source {SOURCE_DIGEST}", manifest["source"][SOURCE_DIGEST])
    lex = manifest["lexicon"]
    table.add_row("lexicon", f"{lex['path']} ({lex['words']} words)" if lex["path"] else "none")
    for key, value in manifest["counts"].items():
        table.add_row(key.replace("_", " "), "?" if value is None else f"{value:,}")
    top = list(manifest["relations"].items())[:8]
    table.add_row("top relations", ", ".join(f"{name} {count:,}" for name, count in top))
    skipped = manifest["skipped"]
    table.add_row(
        "skipped lines",
        ", ".join(f"{reason}: {count:,}" for reason, count in skipped.items()) or "none",
    )
    for note in manifest.get("notes", []):
        table.add_row("note", note)
    table.add_row("time", f"{seconds:.1f} s")
    out.print(table)
    if not manifest["counts"].get("edges"):
        err.print(
            f"[yellow]warning:[/] {source}: no edges were read; the index answers nothing "
            "(see the skipped lines above)",
            highlight=False,
            soft_wrap=True,
        )


@app.command("query")
def query_command(
    word: str = typer.Argument(..., metavar="WORD", help="The word (or phrase) to look up."),
    index: Path = typer.Option(Path("index"), "--index", help="Index folder."),
    top: int = typer.Option(
        10, "--top", min=1, max=1_000_000, help="How many neighbours to show (at most 1,000,000)."
    ),
) -> None:
    """Show WORD's neighbours in the index, ranked by emotion intensity, with relation and weight.

    \b
    Example: kemp-kg query happy --index index/ --top 10
    """
    knowledge = open_index(index)
    rows = knowledge.neighbours(word, top=top)
    own = knowledge.intensity(word)
    if not rows:
        out.print(f"'{word}' (intensity {own:.3f}) has no neighbours in {index}")
        return
    table = Table(title=f"neighbours of '{word}' (intensity {own:.3f})")
    table.add_column("concept")
    table.add_column("relation")
    table.add_column("weight", justify="right")
    table.add_column("intensity", justify="right")
    for row in rows:
        table.add_row(
            row.concept, row.relation, f"{row.weight:.2f}", f"{row.concept_intensity:.3f}"
        )
    out.print(table)
