"""`kemp-kg inspect --plot`: readable at 10 concepts (no overlapping labels) with a legend."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemp_kg.inspect import EDGE_STYLES, ConceptRow, ExampleView, draw_example, plot_example

WORDS = "<cls> i was so scared they would kill me , i thought i would die".split()
CONCEPTS = [  # (anchor, concept): several per word, short and long, as an ED example gives
    (4, "fear"),
    (4, "afraid"),
    (4, "terrified"),
    (7, "murder"),
    (7, "death"),
    (7, "die"),
    (14, "death"),
    (14, "kill"),
    (14, "funeral"),
    (11, "believe"),
]


def _view() -> ExampleView:
    concepts = [
        ConceptRow(a, WORDS[a], c, "RelatedTo", 1.0, 0.5 + i / 40)
        for i, (a, c) in enumerate(CONCEPTS)
    ]
    return ExampleView(
        index=0,
        example_id="ed:1",
        split="train",
        emotion="terrified",
        history=[" ".join(WORDS[1:])],
        target="that sounds awful",
        tokens=WORDS,
        roles=[0] + [1] * (len(WORDS) - 1),
        intensity=[0.0] * len(WORDS),
        concepts=concepts,
        edge_counts={},
        num_rows=1,
    )


def test_labels_do_not_overlap_at_ten_concepts() -> None:
    import matplotlib.pyplot as plt

    fig, texts = draw_example(_view())
    try:
        renderer = fig.canvas.get_renderer()
        boxes = {v: t.get_window_extent(renderer) for v, t in texts.items()}
        assert len(boxes) == len(WORDS) + len(CONCEPTS)
        clashes = [
            (texts[a].get_text(), texts[b].get_text())
            for a in boxes
            for b in boxes
            if a < b and boxes[a].overlaps(boxes[b])
        ]
        assert clashes == []
        # every label is inside the figure
        width, height = fig.canvas.get_width_height()
        for box in boxes.values():
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height
    finally:
        plt.close(fig)


def test_legend_names_the_three_edge_types() -> None:
    import matplotlib.pyplot as plt

    fig, _ = draw_example(_view())
    try:
        legend_text = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        for kind in ("temporary", "emotion", "globality"):
            assert any(text.startswith(kind) for text in legend_text), legend_text
        assert set(EDGE_STYLES) == {"temporary", "emotion", "globality"}
    finally:
        plt.close(fig)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = plot_example(_view(), tmp_path / "g.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("n_concepts", [0, 1])
def test_small_graphs_draw(tmp_path: Path, n_concepts: int) -> None:
    view = _view()
    view = ExampleView(**{**view.__dict__, "concepts": view.concepts[:n_concepts]})
    assert plot_example(view, tmp_path / "g.png").stat().st_size > 0
