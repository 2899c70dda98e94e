"""Look at one example of a graph file: history, concepts, edge counts and a picture of it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kemp_kg import schema


@dataclass(frozen=True)
class ConceptRow:
    """One concept vertex: the word it hangs off, the concept, relation, weight and intensity."""

    anchor: int
    word: str
    concept: str
    relation: str
    weight: float
    intensity: float


@dataclass(frozen=True)
class ExampleView:
    """Everything :func:`view_example` found for one row, decoded to strings."""

    index: int
    example_id: str
    split: str
    emotion: str
    history: list[str]
    target: str
    tokens: list[str]
    roles: list[int]
    intensity: list[float]
    concepts: list[ConceptRow]
    edge_counts: dict[str, int]
    num_rows: int


def view_example(graphs: schema.GraphFile, index: int) -> ExampleView:
    """Decode row ``index`` of an opened graph file (``ValueError`` naming it when out of range)."""
    total = len(graphs)
    if not 0 <= index < total:
        raise ValueError(
            f"example {index} out of range: the file holds {total} rows (0..{total - 1})"
        )
    row = graphs.table.slice(index, 1).to_pylist()[0]
    vocab = graphs.vocab
    tokens = [vocab[i] for i in row["context_ids"]]
    concepts = [
        ConceptRow(a, tokens[a], vocab[c], schema.RELATIONS[r], w, x)
        for a, c, r, w, x in zip(
            row["concept_anchor"],
            row["concept_ids"],
            row["concept_relation"],
            row["concept_weight"],
            row["concept_intensity"],
        )
    ]
    edges = schema.edge_lists(len(tokens), row["concept_anchor"])
    emotion = schema.EMOTIONS[row["emotion"]] if row["emotion"] >= 0 else "unknown"
    return ExampleView(
        index=index,
        example_id=row["example_id"],
        split=row["split"],
        emotion=emotion,
        history=row["history"],
        target=row["target"],
        tokens=tokens,
        roles=row["context_roles"],
        intensity=row["context_intensity"],
        concepts=concepts,
        edge_counts={name: len(pairs) for name, pairs in edges.items()},
        num_rows=total,
    )


_ROLE_COLOURS = {0: "#444444", 1: "#1f77b4", 2: "#2ca02c", 3: "#d62728"}
_ROLE_LABELS = {0: "CLS", 1: "speaker word", 2: "listener word", 3: "knowledge concept"}
#: Edge type -> (colour, width, alpha, what the legend says): the three edge kinds of Eq. 2.
EDGE_STYLES = {
    "temporary": ("#222222", 1.5, 1.0, "temporary (word to next word)"),
    "emotion": ("#d62728", 1.2, 1.0, "emotion (word to its concept)"),
    "globality": ("#9467bd", 0.6, 0.15, "globality (CLS to every vertex)"),
}
#: Label geometry in inches at :data:`_FONT` points (a generous width per character).
_FONT = 8
_CHAR_IN = 0.075
_GAP_IN = 0.25


def _label_width(text: str) -> float:
    return max(len(line) for line in text.split("\n")) * _CHAR_IN + _GAP_IN


def plot_layout(view: ExampleView) -> tuple[dict[int, tuple[float, float]], dict[int, str]]:
    """Vertex positions (inches) and labels: words in a row spaced by their label widths, the
    concepts in a row below ordered by their word and pushed right until their labels clear each
    other, CLS above the middle. Vertex ids: 0 CLS, 1..n-1 words, n.. concepts."""
    n_words = len(view.tokens)
    pos: dict[int, tuple[float, float]] = {}
    labels: dict[int, str] = {0: "CLS"}
    x = 0.0
    for i in range(1, n_words):
        labels[i] = view.tokens[i]
        width = _label_width(labels[i])
        pos[i] = (x + width / 2, 0.0)
        x += width
    right = x
    order = sorted(range(len(view.concepts)), key=lambda j: (view.concepts[j].anchor, j))
    x = 0.0
    for j in order:
        concept = view.concepts[j]
        v = n_words + j
        labels[v] = f"{concept.concept}\n{concept.intensity:.2f}"
        width = _label_width(labels[v])
        anchor_x = pos.get(concept.anchor, (0.0, 0.0))[0]
        centre = max(anchor_x, x + width / 2)
        pos[v] = (centre, -1.6)
        x = centre + width / 2
        right = max(right, x)
    pos[0] = (right / 2, 1.4)
    return pos, labels


def plot_example(view: ExampleView, path: str | os.PathLike[str]) -> Path:
    """Draw the example's graph to a PNG (atomic); see :func:`draw_example`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, _texts = draw_example(view)
    try:
        final = Path(path)
        with schema.atomic_path(final) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return final


def draw_example(view: ExampleView):
    """The example's graph as a matplotlib figure, and its vertex label artists.

    Words in a row (speaker blue, listener green), concepts below (red) with their intensity,
    CLS above; temporary edges dark, emotion edges red, globality edges faint purple; a legend
    names the vertex roles and the three edge types. One horizontal inch is one layout unit, so
    labels never overlap (:func:`plot_layout`). Returns ``(figure, {vertex: Text})``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pos, labels = plot_layout(view)
    n_words = len(view.tokens)
    colours = {0: _ROLE_COLOURS[0]}
    for i in range(1, n_words):
        colours[i] = _ROLE_COLOURS.get(view.roles[i], "#888888")
    for j in range(len(view.concepts)):
        colours[n_words + j] = _ROLE_COLOURS[3]
    xs = [x for x, _ in pos.values()]
    span = max(xs) - min(xs) if xs else 1.0
    pad = 0.8
    fig = plt.figure(figsize=(max(6.0, span + 2 * pad), 5.2))
    ax = fig.add_axes((0.0, 0.22, 1.0, 0.68))
    ax.set_xlim(min(xs, default=0.0) - pad, max(xs, default=1.0) + pad)
    ax.set_ylim(-2.4, 2.0)
    ax.axis("off")
    edges = schema.edge_lists(n_words, [c.anchor for c in view.concepts])
    for kind in ("globality", "temporary", "emotion"):
        colour, width, alpha, _ = EDGE_STYLES[kind]
        for a, b in edges[kind]:
            if a in pos and b in pos:
                ax.plot(
                    [pos[a][0], pos[b][0]],
                    [pos[a][1], pos[b][1]],
                    color=colour,
                    linewidth=width,
                    alpha=alpha,
                    zorder=1,
                )
    nodes = sorted(pos)
    ax.scatter(
        [pos[v][0] for v in nodes],
        [pos[v][1] for v in nodes],
        s=60,
        zorder=2,
        c=[colours[v] for v in nodes],
    )
    texts = {}
    for v in nodes:
        x, y = pos[v]
        below = y < 0
        texts[v] = ax.annotate(
            labels[v],
            (x, y),
            xytext=(0, -7 if below else 7),
            textcoords="offset points",
            ha="center",
            va="top" if below else "bottom",
            fontsize=_FONT,
            zorder=3,
        )
    ax.set_title(
        f"{view.example_id} ({view.split}, {view.emotion}): "
        f"{n_words - 1} words, {len(view.concepts)} concepts",
        fontsize=9,
    )
    handles = [
        Line2D([], [], color=colour, linewidth=max(width, 1.0), alpha=max(alpha, 0.5), label=text)
        for colour, width, alpha, text in EDGE_STYLES.values()
    ] + [
        Line2D([], [], marker="o", linestyle="", color=_ROLE_COLOURS[r], label=name)
        for r, name in _ROLE_LABELS.items()
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=4,
        fontsize=_FONT,
        frameon=False,
        title="edges and vertices",
        title_fontsize=_FONT,
    )
    return fig, texts
