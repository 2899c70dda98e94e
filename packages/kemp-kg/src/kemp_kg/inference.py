"""Graphs at inference time (chat): the same pipeline as `kemp-kg enrich`, one history at a time.

kemp-model loads this through the entry point ``kemp.graph_builder`` / ``default`` (no static import
of kemp_kg internals)::

    builder = GraphBuilder(index_dir, vocab, provenance)   # vocab/provenance of the graph file
    table = builder.build([("speaker", "I got the job!")])  # one row of schema.GRAPH_SCHEMA
    builder.concepts(table)  # [(word, concept, relation, intensity), ...]

The thresholds come from ``provenance["thresholds"]`` (what the training file was made with), so a
chat graph is built exactly as the training graphs were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from kemp_kg import schema
from kemp_kg.dialogues import cut_text
from kemp_kg.enrich import HistoryPlan, TokenTables, assemble, retrieve
from kemp_kg.errors import InputError
from kemp_kg.presets import EnrichConfig, paper
from kemp_kg.text import process_texts


class GraphBuilder:
    """Builds one graph row for a chat history with a training file's vocabulary and thresholds.

    Args:
        index_dir: the knowledge index folder (ideally the one named in the provenance).
        vocab: the training file's vocabulary.
        provenance: the training file's provenance (``thresholds`` gives the config; without it the
            ``paper`` preset is used).
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        vocab: Sequence[str],
        provenance: Mapping[str, object],
    ) -> None:
        from kemp_kg.index import open_index

        if tuple(vocab[: len(schema.SPECIAL_TOKENS)]) != schema.SPECIAL_TOKENS:
            raise ValueError("vocab must start with schema.SPECIAL_TOKENS")
        self.index = open_index(index_dir)
        self.vocab = tuple(vocab)
        self.vocab_index = {tok: i for i, tok in enumerate(self.vocab)}
        thresholds = provenance.get("thresholds")
        self.config = (
            EnrichConfig.from_json(thresholds) if isinstance(thresholds, Mapping) else paper()
        )
        self._con = self.index.connect()

    def build(self, turns: Sequence[tuple[str, str]]) -> pa.Table:
        """One row of :data:`schema.GRAPH_SCHEMA` for the history ``turns`` ((role, text) pairs).

        The row has split ``"chat"``, emotion -1, target ``""`` and no target ids. As in
        ``kemp-kg enrich``, only the newest ``max_history_turns`` turns are used and a turn is cut
        to ``max_turn_chars`` characters (the limits of the training file's thresholds), so the
        graph, and the memory the model needs for it, stay bounded however long the chat runs.
        """
        if not turns:
            raise InputError("chat history is empty; say something first")
        turns = [
            (role, cut_text(text, self.config.max_turn_chars))
            for role, text in turns[-self.config.max_history_turns :]
        ]
        texts: list[str] = []
        history: list[tuple[str, int]] = []
        for i, (role, text) in enumerate(turns):
            if role not in ("speaker", "listener"):
                raise InputError(f"turn {i}: role {role!r} is not speaker/listener")
            if not text.strip():
                raise InputError(f"turn {i} is empty")
            history.append((role, len(texts)))
            texts.append(text)
        processed = process_texts(texts, workers=1)
        tables = TokenTables(processed, self.vocab_index, self._con, self.config)
        candidates = retrieve(self._con, tables, self.vocab_index, self.config)
        plan = HistoryPlan(
            example_ids=[f"chat:{len(turns)}"],
            conv_ids=["chat"],
            splits=["chat"],
            emotions=[schema.UNKNOWN_EMOTION],
            history=[history],
            target=[-1],
        )
        return assemble(plan, texts, tables, candidates, self.config).cast(schema.GRAPH_SCHEMA)

    def concepts(self, table: pa.Table) -> list[tuple[str, str, str, float]]:
        """(word, concept, relation, intensity) of the first row's concepts, for display."""
        row = table.slice(0, 1).to_pylist()[0]
        context = row["context_ids"]
        return [
            (self.vocab[context[a]], self.vocab[c], schema.RELATIONS[r], float(x))
            for a, c, r, x in zip(
                row["concept_anchor"],
                row["concept_ids"],
                row["concept_relation"],
                row["concept_intensity"],
            )
        ]

    def close(self) -> None:
        """Close the index connection."""
        self._con.close()

    def __enter__(self) -> GraphBuilder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def index_path(self) -> Path:
        return Path(self.index.path)
