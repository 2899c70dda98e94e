"""`kemp-model evaluate | generate | score`: figures, batch responses, and scoring of any
predictions file in the official KEMP format."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from kemp_kg import schema
from kemp_model.cli.app import app, per_preset
from kemp_model.decoding import DECODE_PRESETS, DecodeConfig, decode_preset


class Decode(str, enum.Enum):
    """Named decoding presets (kemp_model.decoding.DECODE_PRESETS)."""

    greedy = "greedy"
    beam = "beam"
    topk = "topk"
    topp = "topp"
    diverse = "diverse"


# Shared decoding options (None = the preset's value; the help shows each preset's value).
def _decode_default(name: str) -> str:
    return per_preset({preset: getattr(make(), name) for preset, make in DECODE_PRESETS.items()})


DECODE_OPTION = typer.Option(
    Decode.greedy,
    "--decode",
    help="Decoding preset (each option below shows its value per preset).",
)
BEAM_OPTION = typer.Option(
    None, "--beam-size", min=1, help=f"Beam width (beam). {_decode_default('beam_size')}"
)
NGRAM_OPTION = typer.Option(
    None,
    "--no-repeat-ngram",
    min=0,
    help=f"Block repeated n-grams of this order (0 = off). {_decode_default('no_repeat_ngram')}",
)
TOPK_OPTION = typer.Option(
    None, "--top-k", min=1, help=f"k of top-k sampling (topk). {_decode_default('top_k')}"
)
TOPP_OPTION = typer.Option(
    None,
    "--top-p",
    help=f"p of nucleus sampling, in (0, 1] (topp, diverse). {_decode_default('top_p')}",
)
TEMP_OPTION = typer.Option(
    None,
    "--temperature",
    help=f"Sampling temperature, > 0 (topk, topp, diverse). {_decode_default('temperature')}",
)
LP_OPTION = typer.Option(
    None,
    "--length-penalty",
    help=f"GNMT length penalty alpha (beam). {_decode_default('length_penalty')}",
)
MAXLEN_OPTION = typer.Option(
    None, "--max-len", min=1, help=f"Most tokens per response. {_decode_default('max_len')}"
)
SEED_OPTION = typer.Option(
    None,
    "--seed",
    min=0,
    max=2**32 - 1,
    help=f"Sampling seed (topk, topp, diverse). {_decode_default('seed')}",
)


def decode_config(
    decode: Decode,
    beam_size: int | None,
    no_repeat_ngram: int | None,
    top_k: int | None,
    top_p: float | None,
    temperature: float | None,
    length_penalty: float | None,
    max_len: int | None,
    seed: int | None,
) -> DecodeConfig:
    """The preset with the given overrides; a bad value becomes a usage error."""
    try:
        return decode_preset(
            decode.value,
            beam_size=beam_size,
            no_repeat_ngram=no_repeat_ngram,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            length_penalty=length_penalty,
            max_len=max_len,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@contextmanager
def row_progress(label: str) -> Iterator[Callable[[int], Callable[[int], None]]]:
    """A rich progress bar; yields ``start(total) -> advance(rows)``."""
    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("examples"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:

        def start(total: int) -> Callable[[int], None]:
            task = progress.add_task(label, total=total)
            return lambda rows: progress.advance(task, rows)

        yield start


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show the library's user-facing warnings (another knowledge index, ...) as one
    ``warning:`` line each on stderr, after the progress bar."""
    import warnings

    from kemp_model.evaluate import IndexMismatchWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IndexMismatchWarning)
        try:
            yield
        finally:
            console = Console(stderr=True, highlight=False)
            for item in caught:
                if issubclass(item.category, IndexMismatchWarning):
                    console.print(f"[yellow]warning:[/] {item.message}", soft_wrap=True)
                else:
                    warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def _run_inputs(run_dir: Path, graphs: list[Path] | None) -> list[Path]:
    """What evaluate/generate read, for :func:`kemp_kg.schema.check_output`: the graph files
    (given or recorded in the run), the run folder and each of its run files."""
    from kemp_model import checkpoint as ckpt

    recorded: list[Path] = []
    if not graphs:
        with suppress(Exception):  # a broken run is reported by the command itself
            recorded = [Path(p) for p in ckpt.read_run_config(run_dir)[0].graphs]
    return [*(graphs or ()), *recorded, run_dir, *(run_dir / f for f in ckpt.RUN_FILES)]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@app.command("evaluate")
def evaluate_command(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="Run folder written by `kemp-model train`."
    ),
    graphs: list[Path] = typer.Option(
        None,
        "--graphs",
        metavar="FILE",
        help="Graph file(s) (repeat the flag; default: the one recorded in the run).",
    ),
    split: str = typer.Option("test", "--split", help="Split to evaluate."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N examples."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Examples per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        max=1024,
        help="CPU threads for torch (default: torch's; 1 beside training processes).",
    ),
    out_dir: Path = typer.Option(None, "--out-dir", help="Output folder (default RUN/eval)."),
    decode: Decode = DECODE_OPTION,
    beam_size: int = BEAM_OPTION,
    no_repeat_ngram: int = NGRAM_OPTION,
    top_k: int = TOPK_OPTION,
    top_p: float = TOPP_OPTION,
    temperature: float = TEMP_OPTION,
    length_penalty: float = LP_OPTION,
    max_len: int = MAXLEN_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Emotion accuracy, perplexity, Distinct-1/2 and BLEU of a run on a split.

    Writes RUN/eval/SPLIT-DECODE.metrics.json and SPLIT-DECODE.predictions.txt (the official
    KEMP Emotion/Context/Concept/Pred/Ref format).

    \b
    Example: kemp-model evaluate runs/kemp --split test --decode beam
    """
    from kemp_model.evaluate import EvalConfig, evaluate_run

    if threads:
        import torch

        torch.set_num_threads(threads)
    config = EvalConfig(
        run_dir=run_dir,
        graphs=tuple(graphs or ()),
        split=split,
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
        decode_name=decode.value,
        limit=limit,
        batch_size=batch_size,
        device=device,
        out_dir=out_dir,
    )
    target = out_dir or run_dir / "eval"
    with schema.claim_output(
        target,
        inputs=_run_inputs(run_dir, graphs),
        folder=True,
        ours=lambda _: True,
        flag="--out-dir",
    ):
        with row_progress(f"evaluate {split}") as progress, _warnings_as_lines():
            result = evaluate_run(config, progress=progress)
    m = result.metrics
    table = Table(title=f"kemp-model evaluate {run_dir} ({split}, {decode.value})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    accuracy = m["emotion_accuracy"]
    rows = [
        ("examples", m["examples"]),
        ("emotion accuracy (%)", None if accuracy is None else 100 * accuracy),
        ("perplexity, per example (paper)", m["perplexity_per_example"]),
        ("perplexity, pooled tokens", m["perplexity_pooled"]),
        ("Distinct-1", m["distinct_1"]),
        ("Distinct-2", m["distinct_2"]),
        ("BLEU-1 / BLEU-4", f"{m['bleu_1']:.2f} / {m['bleu_4']:.2f}"),
        ("most frequent response share (%)", 100 * m["top_response_share"]),
        ("wall time (s)", m["wall_seconds"]),
    ]
    for name, value in rows:
        table.add_row(name, _fmt(value))
    console = Console()
    console.print(table)
    console.print(f"metrics:     {result.metrics_path}", highlight=False)
    console.print(f"predictions: {result.predictions_path}", highlight=False)


@app.command("generate")
def generate_command(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="Run folder written by `kemp-model train`."
    ),
    graphs: list[Path] = typer.Option(
        None,
        "--graphs",
        metavar="FILE",
        help="Graph file(s) (repeat the flag; default: the one recorded in the run).",
    ),
    split: str = typer.Option("test", "--split", help="Split to answer."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N examples."),
    out: Path = typer.Option(None, "--out", help="Write one JSON object per example here."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Examples per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    show: int = typer.Option(10, "--show", min=0, help="Print at most this many examples."),
    decode: Decode = DECODE_OPTION,
    beam_size: int = BEAM_OPTION,
    no_repeat_ngram: int = NGRAM_OPTION,
    top_k: int = TOPK_OPTION,
    top_p: float = TOPP_OPTION,
    temperature: float = TEMP_OPTION,
    length_penalty: float = LP_OPTION,
    max_len: int = MAXLEN_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Generate responses (with predicted emotion and injected concepts) for a split.

    \b
    Example: kemp-model generate runs/kemp --graphs out.arrow --limit 20 --out preds.jsonl
    """
    from kemp_model.evaluate import GenerateConfig, generate_run

    config = GenerateConfig(
        run_dir=run_dir,
        graphs=tuple(graphs or ()),
        split=split,
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
        limit=limit,
        batch_size=batch_size,
        device=device,
        out=out,
    )
    claim = schema.claim_output(out, inputs=_run_inputs(run_dir, graphs)) if out else nullcontext()
    with claim, row_progress(f"generate {split}") as progress, _warnings_as_lines():
        predictions = generate_run(config, progress=progress)
    console = Console()
    table = Table(title=f"kemp-model generate {run_dir} ({split}, {decode.value})", show_lines=True)
    for column in ("example", "last turn", "emotion (gold -> predicted)", "response", "reference"):
        table.add_column(column, overflow="fold")
    for prediction in predictions[:show]:
        top = prediction.emotion_top[0][0] if prediction.emotion_top else "-"
        table.add_row(
            prediction.example_id,
            prediction.history[-1] if prediction.history else "",
            f"{prediction.emotion} -> {top}",
            prediction.response,
            prediction.reference,
        )
    console.print(table)
    console.print(f"{len(predictions)} responses" + (f" -> {out}" if out else ""), highlight=False)


@app.command("score")
def score_command(
    predictions: Path = typer.Argument(
        ..., metavar="PREDICTIONS", help="A predictions file in the official KEMP format."
    ),
    top: int = typer.Option(5, "--top", min=1, help="List this many most frequent responses."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
) -> None:
    """Distinct-1/2, BLEU-1..4 and response repetition of an Emotion/Context/Concept/Pred/Ref file.

    \b
    Example: kemp-model score ../shared/data/kemp_reference/KEMP_test_predictions.txt
    """
    from kemp_kg.schema import atomic_path
    from kemp_model.score import score_predictions

    if json_out is not None:
        schema.check_output(json_out, inputs=[predictions], flag="--json")

    report = score_predictions(predictions, top=top)
    figures = report.as_dict()
    table = Table(title=f"kemp-model score {predictions}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("examples", str(report.examples))
    table.add_row("Distinct-1", f"{report.distinct_1:.2f}")
    table.add_row("Distinct-2", f"{report.distinct_2:.2f}")
    table.add_row("Distinct-2 (official joined bigrams)", f"{report.distinct_2_joined:.2f}")
    for n in range(1, 5):
        table.add_row(f"BLEU-{n}", f"{report.bleu.bleu[n]:.2f}")
    table.add_row("mean length (tokens)", f"{report.mean_length:.2f}")
    table.add_row("unique responses", f"{report.unique_responses}")
    table.add_row("most frequent response share (%)", f"{100 * report.top_share:.2f}")
    console = Console()
    console.print(table)
    repeats = Table(title="most frequent responses")
    repeats.add_column("count", justify="right")
    repeats.add_column("share %", justify="right")
    repeats.add_column("response")
    for response, count in report.top_responses:
        repeats.add_row(str(count), f"{100 * count / report.examples:.2f}", response)
    console.print(repeats)
    if json_out is not None:
        with (
            schema.claim_output(json_out, inputs=[predictions], flag="--json"),
            atomic_path(json_out) as tmp,
        ):
            payload = {"predictions": str(predictions), **figures}
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"figures: {json_out}", highlight=False)
