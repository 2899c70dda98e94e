"""`kemp-kg inspect`: print one example of a graph file and optionally draw its graph."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kemp_kg import schema
from kemp_kg.cli.app import app
from kemp_kg.inspect import plot_example, view_example

out = Console()

_ROLE_NAMES = {0: "CLS", 1: "speaker", 2: "listener", 3: "knowledge"}


@app.command("inspect")
def inspect_command(
    graphs: list[Path] = typer.Argument(
        ..., metavar="GRAPHS", help="Graph file(s) or a folder of shards."
    ),
    example: int = typer.Option(0, "--example", help="Row number to show (0-based)."),
    plot: Path | None = typer.Option(None, "--plot", help="Draw the graph to this PNG."),
) -> None:
    """Show one example: history, concepts (word -> concept), edge counts; --plot draws it.

    \b
    Example: kemp-kg inspect out.arrow --example 3 --plot graph.png
    """
    if plot is not None:
        schema.check_output(plot, inputs=graphs, flag="--plot")
    opened = schema.open_graphs(graphs)
    opened.verify()  # a value outside the contract is one line, not an IndexError while drawing
    try:
        view = view_example(opened, example)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--example") from None
    out.print(
        f"[bold]{view.example_id}[/] (row {view.index} of {view.num_rows}, split "
        f"{view.split}, emotion {view.emotion}, preset "
        f"{opened.provenance.get('preset', '?')})",
        highlight=False,
    )
    history = Table(title="history -> target", show_header=True)
    history.add_column("#", justify="right")
    history.add_column("text")
    for i, text in enumerate(view.history):
        history.add_row(str(i), text)
    history.add_row("target", f"[bold]{view.target}[/]")
    out.print(history)
    out.print(
        "tokens: "
        + " ".join(
            f"{tok}[dim]({view.intensity[i]:.2f})[/]" if view.intensity[i] > 0 else tok
            for i, tok in enumerate(view.tokens)
        ),
        highlight=False,
    )
    concepts = Table(title=f"concepts ({len(view.concepts)})", show_header=True)
    for name in ("position", "word", "concept", "relation", "weight", "intensity"):
        numeric = name in ("position", "weight", "intensity")
        concepts.add_column(name, justify="right" if numeric else "left")
    for c in view.concepts:
        concepts.add_row(
            str(c.anchor), c.word, c.concept, c.relation, f"{c.weight:.2f}", f"{c.intensity:.3f}"
        )
    out.print(concepts)
    edges = Table(title="edges", show_header=True)
    edges.add_column("type")
    edges.add_column("count", justify="right")
    for name, count in view.edge_counts.items():
        edges.add_row(name, str(count))
    roles = {_ROLE_NAMES[r]: view.roles.count(r) for r in sorted(set(view.roles))}
    roles["knowledge"] = len(view.concepts)
    edges.add_row("vertices", ", ".join(f"{k} {v}" for k, v in roles.items()))
    out.print(edges)
    if plot is not None:
        with schema.claim_output(plot, inputs=graphs, flag="--plot"):
            out.print(f"graph drawn to {plot_example(view, plot)}")
