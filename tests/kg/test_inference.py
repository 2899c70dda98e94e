"""The chat-time GraphBuilder, loaded through its entry point as kemp-model does."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from kemp_kg import schema
from kemp_kg.enrich import enrich
from kemp_kg.errors import InputError
from kemp_kg.presets import official


def test_entry_point_builder_matches_enrich_row(
    nltk_data: Path, sample_index: Path, tmp_path: Path
) -> None:
    (builder_cls,) = [
        ep.load() for ep in entry_points(group="kemp.graph_builder") if ep.name == "default"
    ]
    turns = [
        ("speaker", "My dog won a prize, I am so happy and proud!"),
        ("listener", "Congratulations, what a lovely surprise."),
        ("speaker", "I cried a little, it was a great day."),
    ]
    dialogue = {
        "id": "c",
        "split": "train",
        "emotion": "proud",
        "turns": [{"role": r, "text": t} for r, t in turns]
        + [{"role": "listener", "text": "You deserve it: such joy, pride and success!"}],
    }
    (tmp_path / "d.jsonl").write_text(__import__("json").dumps(dialogue) + "\n")
    config = official().replace(min_concept_intensity=0.3, top_k_per_token=2)
    graphs = schema.open_graphs(
        enrich(tmp_path / "d.jsonl", sample_index, tmp_path / "g.arrow", config=config).path
    )
    expected = graphs.table.to_pylist()[-1]
    with builder_cls(sample_index, graphs.vocab, graphs.provenance) as builder:
        table = builder.build(turns)
        assert table.schema.equals(schema.GRAPH_SCHEMA) and table.num_rows == 1
        row = table.to_pylist()[0]
        assert row["split"] == "chat" and row["emotion"] == -1 and row["target_ids"] == []
        for column in (
            "context_ids",
            "context_roles",
            "context_intensity",
            "concept_ids",
            "concept_anchor",
            "concept_relation",
            "concept_weight",
            "concept_intensity",
        ):
            assert row[column] == expected[column], column
        shown = builder.concepts(table)
        assert len(shown) == len(row["concept_ids"]) > 0
        assert all(x >= 0.3 for _, _, _, x in shown)
        with pytest.raises(InputError):
            builder.build([])
