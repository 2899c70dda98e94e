"""`kemp-model train`: train a KEMP model from a graph file into a run folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kemp_kg import schema
from kemp_model import checkpoint as ckpt
from kemp_model.cli.app import app, per_preset
from kemp_model.config import PRESETS, get_preset
from kemp_model.train import TrainJob, train


def _default(field: str, part: str = "train") -> str:
    """``[default: 26000; tiny: 200]``: a TrainConfig/ModelConfig field's value per preset."""
    values = {name: getattr(getattr(make(), part), field) for name, make in PRESETS.items()}
    return per_preset(values, lambda v: f"{v:g}" if isinstance(v, float) else str(v))


def _dropout_default() -> str:
    values = {name: make().model for name, make in PRESETS.items()}
    return per_preset({k: f"{m.dropout:g}/{m.graph_dropout:g}" for k, m in values.items()})


def _weights_default() -> str:
    losses = {name: make().loss for name, make in PRESETS.items()}
    return per_preset(
        {
            k: f"{x.emotion_weight:g},{x.generation_weight:g},{x.attention_weight:g}"
            for k, x in losses.items()
        }
    )


def _check_preset(value: str | None) -> str | None:
    if value is not None:
        try:
            get_preset(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@app.command("train")
def train_command(
    graphs: list[Path] = typer.Option(
        ...,
        "--graphs",
        metavar="FILE",
        help="Graph file or folder from `kemp-kg enrich` (repeat the flag for several).",
    ),
    preset: str = typer.Option(
        None,
        "--preset",
        metavar="[" + "|".join(PRESETS) + "]",
        callback=_check_preset,
        help="Model and schedule (README: Training). [default: kemp; with --resume the run's]",
    ),
    dropout: float = typer.Option(
        None,
        "--dropout",
        min=0.0,
        max=0.99,
        help=f"Dropout of the layers and of graph attention. {_dropout_default()} (layers/graph)",
    ),
    embedding_dim: int = typer.Option(
        None,
        "--embedding-dim",
        min=1,
        help=f"Word-table width; narrower vectors are placed by --embedding-placement, wider ones widen the table. {_default('embedding_dim', 'model')}",
    ),
    loss_reduction: str = typer.Option(
        None,
        "--loss-reduction",
        metavar="[official|sum|mean]",
        help=f"How the loss terms combine (README: Training). {_default('reduction', 'loss')}",
    ),
    loss_weights: str = typer.Option(
        None,
        "--loss-weights",
        metavar="E,G,A",
        help=f"gamma of Eq. 21: emotion, generation, attention weights. {_weights_default()}",
    ),
    label_smoothing: float = typer.Option(
        None,
        "--label-smoothing",
        min=0.0,
        max=0.99,
        help=f"Label smoothing of the generation loss (0 = plain NLL). {_default('label_smoothing', 'loss')}",
    ),
    embedding_placement: str = typer.Option(
        "orthonormal",
        "--embedding-placement",
        metavar="[orthonormal|prefix]",
        help="How narrower vectors fill a wider word table: a fixed orthonormal map, or the first columns.",
    ),
    out: Path = typer.Option(None, "--out", help="Run folder (default runs/PRESET)."),
    embeddings: Path = typer.Option(
        None, "--embeddings", help="GloVe .txt, or .npy with FILE.vocab.txt next to it."
    ),
    embeddings_vocab: Path = typer.Option(None, "--embeddings-vocab", help="Words of a .npy file."),
    max_steps: int = typer.Option(
        None, "--max-steps", min=1, help=f"Optimiser steps. {_default('max_steps')}"
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help=f"GLOBAL batch size (all ranks). {_default('batch_size')}"
    ),
    eval_every: int = typer.Option(
        None,
        "--eval-every",
        min=1,
        help=f"Steps between validations/checkpoints. {_default('eval_every')}",
    ),
    eval_examples: int = typer.Option(
        None,
        "--eval-examples",
        min=0,
        help=f"Validate on at most N examples (0 = all). {_default('eval_examples')}",
    ),
    patience: int = typer.Option(
        None,
        "--patience",
        min=0,
        help=f"Stop after P validations without improvement (0 = never). {_default('patience')}",
    ),
    early_stopping_from: int = typer.Option(
        None,
        "--early-stopping-from",
        min=0,
        help=f"Validations before this step neither keep a best checkpoint nor count for --patience. {_default('early_stopping_from')}",
    ),
    seed: int = typer.Option(
        None,
        "--seed",
        min=0,
        max=2**32 - 1,
        help=f"Seed for initialisation, dropout and batch order. {_default('seed')}",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch (default: torch's)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out exactly where it stopped."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start afresh even if --out holds a run (replaces its files)."
    ),
    bf16: bool = typer.Option(
        None, "--bf16/--no-bf16", help="bfloat16 autocast (CUDA only). [default: no-bf16]"
    ),
    compile_model: bool = typer.Option(
        None,
        "--compile/--no-compile",
        help="torch.compile the layers (a minute of compiling first). [default: no-compile]",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train KEMP (or an ablation) on the train split, validating on the valid split.

    \b
    Example: kemp-model train --graphs out.arrow --preset kemp --out runs/kemp
    --embeddings ../shared/data/vectors/glove.6B.50d.npy

    \b
    Resume after an interruption (bit-exact): kemp-model train --graphs out.arrow --out runs/kemp --resume

    \b
    Several processes: torchrun --nproc_per_node 2 $(which kemp-model) train --graphs out.arrow ...
    """
    flags = {
        "max_steps": max_steps,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "eval_examples": eval_examples,
        "patience": patience,
        "seed": seed,
        "bf16": bf16,
        "compile": compile_model,
        "early_stopping_from": early_stopping_from,
    }
    overrides = tuple((k, v) for k, v in flags.items() if v is not None)
    loss_flags = {"reduction": loss_reduction, "label_smoothing": label_smoothing}
    if loss_weights is not None:
        loss_flags.update(
            zip(("emotion_weight", "generation_weight", "attention_weight"), _weights(loss_weights))
        )
    loss_overrides = tuple((k, v) for k, v in loss_flags.items() if v is not None)
    model_overrides: tuple[tuple[str, object], ...] = ()
    if dropout is not None:
        model_overrides += (("dropout", dropout), ("graph_dropout", dropout))
    if embedding_dim is not None:
        model_overrides += (("embedding_dim", embedding_dim),)
    run_dir = out or Path("runs") / (preset or "kemp").replace("_", "-")
    rule = dict(
        inputs=[*graphs, *(p for p in (embeddings, embeddings_vocab) if p)],
        folder=True,
        ours=ckpt.is_run_folder,
        what="run folder",
        force=force,
    )
    try:
        job = TrainJob(
            graphs=tuple(graphs),
            out=run_dir,
            preset=preset,
            model_overrides=model_overrides,
            loss_overrides=loss_overrides,
            train_overrides=overrides,
            embeddings=embeddings,
            embeddings_vocab=embeddings_vocab,
            embedding_placement=embedding_placement,
            device=device,
            threads=threads,
            resume=resume,
            force=force,
            progress=progress,
        )
        if _rank() != 0:  # the ranks of one job share rank 0's claim of the run folder
            schema.check_output(run_dir, **rule)
            summary = train(job)
        else:
            with schema.claim_output(
                run_dir, kept=lambda: _kept(run_dir), rerun=_resume_command(), **rule
            ):
                summary = train(job)
    except ValueError as exc:
        if type(exc) is not ValueError:  # GraphFileError and friends: mapped by cli.app.main
            raise
        raise typer.BadParameter(str(exc)) from None
    if _rank() != 0:  # under torchrun only rank 0 prints
        return
    table = Table(title=f"kemp-model train -> {summary.run_dir}")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        (
            "steps",
            f"{summary.steps:,}"
            + (
                f" (resumed at {summary.resumed_from:,})"
                if summary.resumed_from is not None
                else ""
            ),
        ),
        ("examples", f"{summary.examples:,}"),
        ("examples/s (training steps, as the bar)", f"{summary.examples_per_s:,.1f}"),
        ("validation + checkpoints", f"{summary.validation_s:,.1f} s"),
        ("device x processes", f"{summary.device} x {summary.world_size}"),
        ("parameters", f"{summary.parameters:,}"),
        (
            "best valid perplexity (per example)",
            f"{summary.best_perplexity:.3f} @ step {summary.best_step}"
            if summary.best_perplexity
            else "-",
        ),
    ]
    for key, label in (
        ("ppl_per_example", "perplexity, per example (paper)"),
        ("ppl_pooled", "perplexity, pooled tokens"),
        ("emotion_accuracy", "emotion accuracy"),
    ):
        if key in summary.last_valid:
            rows.append((f"last valid {label}", f"{summary.last_valid[key]:.4f}"))
    rows.append(("stopped early", "yes" if summary.stopped_early else "no"))
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)


def _weights(text: str) -> tuple[float, float, float]:
    """``--loss-weights E,G,A`` as three floats (a one-line error otherwise)."""
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise typer.BadParameter(
            f"{text!r}: give three numbers EMOTION,GENERATION,ATTENTION, e.g. 1,1,0.1",
            param_hint="--loss-weights",
        )
    return values  # type: ignore[return-value]


def _kept(run_dir: Path) -> str:
    """What an interrupted run folder holds (for the interrupt line)."""
    step = ckpt.saved_step(run_dir)
    if step is None:
        return f"{run_dir} holds no checkpoint yet (--resume starts it at step 0)"
    return f"{run_dir} keeps its checkpoint of step {step:,}"


def _resume_command() -> str:
    """The command line that continues this run: the same arguments, --resume for --force."""
    import shlex
    import sys

    args = [a for a in sys.argv[1:] if a not in ("--force", "--resume")]
    return shlex.join([Path(sys.argv[0]).name, *args, "--resume"])


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", 0))
