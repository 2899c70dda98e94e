"""`kemp-kg enrich`: dialogues -> emotional context graphs (one Arrow file)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kemp_kg import schema
from kemp_kg.cli.app import app
from kemp_kg.enrich import EnrichResult, enrich, parse_shard
from kemp_kg.presets import preset as make_preset
from kemp_kg.vocab import VOCAB_SCOPES

out = Console()
err = Console(stderr=True)


def _split_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


@app.command("enrich")
def enrich_command(
    dialogues: list[Path] = typer.Argument(
        ...,
        metavar="DIALOGUES",
        help="kemp dialogues .jsonl/.json, ED train/valid/test.csv, or their folder.",
    ),
    index: Path = typer.Option(
        Path("index"), "--index", help="Index folder (kemp-kg build-index)."
    ),
    out_path: Path = typer.Option(Path("out.arrow"), "--out", help="Graph file to write."),
    preset_name: str = typer.Option(
        "sense",
        "--preset",
        metavar="[sense|paper|official]",
        help="Retrieval thresholds (README: Dialogues and enrich). sense: for a 'sense' WordNet "
        "index (base form in its own POS, light words skipped, weight x intensity).",
        show_default=True,
    ),
    min_confidence: float | None = typer.Option(
        None, "--min-confidence", help="Edge weight threshold (alpha; paper 0.1, official 1.0)."
    ),
    confidence_inclusive: bool | None = typer.Option(
        None,
        "--confidence-inclusive/--confidence-exclusive",
        help="weight >= threshold (official) or > threshold (paper).",
    ),
    min_intensity: float | None = typer.Option(
        None, "--min-intensity", help="Concept Eq. 1 intensity floor (paper 0, official 0.6)."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k-per-token", help="K': concepts per query word (paper 5, official 1)."
    ),
    max_concepts: int | None = typer.Option(
        None, "--max-concepts", help="N: concepts per example (10 in both presets)."
    ),
    rank_by: str | None = typer.Option(
        None, "--rank-by", help="intensity (paper, official) | weight_x_intensity (sense)."
    ),
    exclude_relations: str | None = typer.Option(
        None, "--exclude-relations", help="Comma-separated relations never followed."
    ),
    query_pos: str | None = typer.Option(
        None, "--query-pos", help="Comma-separated WordNet POS of query words (n,v,a,r)."
    ),
    min_count: int | None = typer.Option(
        None, "--min-count", help="Vocabulary: drop training tokens seen fewer times."
    ),
    max_history_turns: int | None = typer.Option(
        None,
        "--max-history-turns",
        min=1,
        help="Keep the newest N turns of a history (default 16; ED has at most 7).",
    ),
    max_turn_chars: int | None = typer.Option(
        None,
        "--max-turn-chars",
        min=1,
        help="Cut longer turns to N characters (default 1000; ED's longest is 613).",
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        metavar="[train|valid|test]",
        help='Put every conversation in this split (default: each record\'s own "split").',
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="i/n: write only the i-th of n shards (by conversation)."
    ),
    vocab: Path | None = typer.Option(
        None, "--vocab", help="Reuse a vocabulary (JSON token list or a graph file)."
    ),
    vocab_scope: str = typer.Option(
        "train",
        "--vocab-scope",
        metavar="[train|official]",
        help="What the vocabulary counts: the training turns, or (official) every split's turns "
        "and situations as the released KEMP code does.",
        show_default=True,
    ),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad record."),
    workers: int | None = typer.Option(
        None, "--workers", help="Text-pipeline processes (default: all usable CPUs)."
    ),
) -> None:
    """Enrich dialogues into emotional context graphs (one row per listener turn).

    Dialogue formats (README: Dialogue formats): kemp-dialogues/1 as .jsonl (one conversation
    per line) or .json ({"format": "kemp-dialogues/1", "dialogues": [...]}), or the official
    EmpatheticDialogues CSVs.

    Needs NLTK data (stopwords, averaged_perceptron_tagger_eng, wordnet), read from NLTK_DATA
    (default ~/nltk_data) and fetched there once when missing and online.

    \b
    Example: kemp-kg enrich ../shared/data/ed --index index/ --out ed.arrow --preset paper
    """
    try:
        config = make_preset(preset_name).replace(
            min_confidence=min_confidence,
            confidence_inclusive=confidence_inclusive,
            min_concept_intensity=min_intensity,
            top_k_per_token=top_k,
            max_concepts_per_dialogue=max_concepts,
            rank_by=rank_by,
            excluded_relations=_split_list(exclude_relations),
            query_pos=_split_list(query_pos),
            min_count=min_count,
            max_history_turns=max_history_turns,
            max_turn_chars=max_turn_chars,
        )
        shard_pair = parse_shard(shard) if shard else None
        if vocab_scope not in VOCAB_SCOPES:
            raise ValueError(f"--vocab-scope must be one of {', '.join(VOCAB_SCOPES)}")
        if vocab is not None and vocab_scope != "train":
            raise ValueError("--vocab FILE and --vocab-scope official exclude each other")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if split is not None and split not in (*schema.SPLITS, "dev"):  # dev: ED's name for valid
        raise typer.BadParameter(
            f"unknown split {split!r}; choose one of {', '.join(schema.SPLITS)}",
            param_hint="--split",
        )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )

    def hook(stage: str, total: int):
        task = progress.add_task(stage, total=total)
        return lambda n: progress.advance(task, n)

    inputs = [*dialogues, *([vocab] if vocab else [])]
    with schema.claim_output(out_path, inputs=inputs, input_folders=[index]), progress:
        result = enrich(
            dialogues,
            index,
            out_path,
            config=config,
            split=split,
            shard=shard_pair,
            strict=strict,
            vocab_file=vocab,
            vocab_scope=vocab_scope,
            workers=workers,
            progress=hook,
        )
    _summary(result, config.preset)


def _summary(result: EnrichResult, preset_name: str) -> None:
    table = Table(title=f"kemp-kg enrich ({preset_name}) -> {result.path}", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name in ("train", "valid", "test"):
        if result.examples.get(name):
            table.add_row(f"examples {name}", f"{result.examples[name]:,}")
    table.add_row("examples total", f"{sum(result.examples.values()):,}")
    table.add_row("conversations read", f"{result.report.conversations:,}")
    for reason, count in sorted(result.report.skipped.items()):
        table.add_row(f"skipped: {reason}", f"{count:,}")
    for reason, count in sorted(result.report.notices.items()):
        table.add_row(f"notice: {reason}", f"{count:,}")
    table.add_row("unique utterances", f"{result.unique_utterances:,}")
    table.add_row("tokens (unique utterances)", f"{result.tokens:,}")
    table.add_row("distinct query words", f"{result.query_words:,}")
    table.add_row("vocabulary", f"{result.vocab_size:,}")
    stats = result.concepts_per_example
    table.add_row("concepts / example (mean, max)", f"{stats['mean']:.2f}, {stats['max']:.0f}")
    table.add_row("examples without concepts", f"{stats['zero']:,.0f}")
    if result.shard:
        table.add_row("shard", f"{result.shard[0]}/{result.shard[1]}")
    for stage, seconds in result.seconds.items():
        table.add_row(f"time {stage}", f"{seconds:.2f} s")
    table.add_row("time total", f"{sum(result.seconds.values()):.2f} s")
    out.print(table)
    for message in result.report.messages[:5]:
        err.print(f"[yellow]skipped/noted:[/] {message}", highlight=False, soft_wrap=True)
