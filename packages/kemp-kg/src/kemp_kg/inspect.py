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
            row["concept_anchor"], row["concept_ids"], row["concept_relation"],
            row["concept_weight"], row["concept_intensity"],
        )
    ]
    edges = schema.edge_lists(len(tokens), row["concept_anchor"])
    emotion = schema.EMOTIONS[row["emotion"]] if row["emotion"] >= 0 else "unknown"
    return ExampleView(
        index=index, example_id=row["example_id"], split=row["split"], emotion=emotion,
        history=row["history"], target=row["target"], tokens=tokens, roles=row["context_roles"],
        intensity=row["context_intensity"], concepts=concepts,
        edge_counts={name: len(pairs) for name, pairs in edges.items()}, num_rows=total,
    )


_ROLE_COLOURS = {0: "#444444", 1: "#1f77b4", 2: "#2ca02c", 3: "#d62728"}


def plot_example(view: ExampleView, path: str | os.PathLike[str]) -> Path:
    """Draw the example's graph to a PNG (atomic): words in a row, concepts below, CLS on top.

    Colours: CLS grey, speaker blue, listener green, knowledge red; temporary edges solid,
    emotion edges red, globality edges faint.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    n_words = len(view.tokens)
    graph = nx.Graph()
    pos: dict[int, tuple[float, float]] = {0: ((n_words - 1) / 2, 2.0)}
    labels = {0: "CLS"}
    colours = {0: _ROLE_COLOURS[0]}
    for i in range(1, n_words):
        pos[i] = (float(i), 0.0)
        labels[i] = view.tokens[i]
        colours[i] = _ROLE_COLOURS.get(view.roles[i], "#888888")
    per_anchor: dict[int, int] = {}
    for j, concept in enumerate(view.concepts):
        v = n_words + j
        k = per_anchor.get(concept.anchor, 0)  # fan the concepts of one word out below it
        per_anchor[concept.anchor] = k + 1
        pos[v] = (float(concept.anchor) + 1.1 * (k - 1), -1.5 - 0.8 * (k % 2))
        labels[v] = f"{concept.concept}\n{concept.intensity:.2f}"
        colours[v] = _ROLE_COLOURS[3]
    graph.add_nodes_from(pos)
    edges = schema.edge_lists(n_words, [c.anchor for c in view.concepts])
    width = max(8.0, n_words * 0.55)
    fig, ax = plt.subplots(figsize=(width, 5.0))
    try:
        nodes = list(pos)
        nx.draw_networkx_edges(graph, pos, edgelist=edges["globality"], ax=ax, alpha=0.08)
        nx.draw_networkx_edges(graph, pos, edgelist=edges["temporary"], ax=ax, width=1.5)
        nx.draw_networkx_edges(graph, pos, edgelist=edges["emotion"], ax=ax, edge_color="#d62728")
        nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=[colours[v] for v in nodes],
                               node_size=120, ax=ax)
        nx.draw_networkx_labels(graph, {v: (x, y + 0.3) for v, (x, y) in pos.items()}, labels,
                                font_size=7, ax=ax)
        ax.set_title(f"{view.example_id} ({view.split}, {view.emotion}): "
                     f"{n_words - 1} words, {len(view.concepts)} concepts", fontsize=9)
        ax.axis("off")
        final = Path(path)
        with schema.atomic_path(final) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return final
