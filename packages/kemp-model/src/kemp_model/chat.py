"""Talk to a trained run: each message becomes a one-row emotional context graph, live.

Building the graph needs kemp-kg's text pipeline (tokenising, intensity, concept retrieval from
the knowledge index), which kemp-model may not import (docs/DESIGN.md §2.1). kemp-kg therefore
publishes its builder as the entry point ``default`` of group ``kemp.graph_builder``
(docs/DESIGN.md §2.3), and :func:`load_graph_builder` finds it through ``importlib.metadata``:
no static import, so the one-way rule holds and another package can provide a builder.

Builder protocol::

    builder = GraphBuilder(index_dir, vocab, provenance)
    table = builder.build([(role, text), ...])      # one row of schema.GRAPH_SCHEMA
    builder.concepts(table) -> [(word, concept, relation, intensity), ...]

A :class:`ChatSession` keeps the history as ``(role, text)`` turns: the user speaks as
``speaker``, the model answers as ``listener``, and every reply is generated from the whole
history so far.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from kemp_kg import schema
from kemp_model.data import GraphDataset
from kemp_model.decoding import DecodeConfig, generate
from kemp_model.errors import KempModelError
from kemp_model.evaluate import emotion_top, ids_to_text, index_mismatch, load_inference_run

#: Entry-point group and name of the graph builder (docs/DESIGN.md §2.3).
ENTRY_POINT_GROUP = "kemp.graph_builder"
ENTRY_POINT_NAME = "default"

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChatConfig",
    "ChatReply",
    "ChatSession",
    "GraphBuilder",
    "load_graph_builder",
]


class GraphBuilder(Protocol):
    """What chat needs from the kemp-kg text pipeline."""

    def build(self, turns: Sequence[tuple[str, str]]) -> Any: ...

    def concepts(self, table: Any) -> list[tuple[str, str, str, float]]: ...


def load_graph_builder(name: str = ENTRY_POINT_NAME) -> type:
    """The graph-builder class registered as entry point ``name`` in ``kemp.graph_builder``.

    Raises:
        KempModelError: no such entry point (kemp-kg not installed), or it fails to load.
    """
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    found = [ep for ep in entry_points if ep.name == name]
    if not found:
        raise KempModelError(
            f"no graph builder {name!r} in entry-point group {ENTRY_POINT_GROUP!r}; "
            "install kemp-kg (`pip install -e packages/kemp-kg`) to chat"
        )
    try:
        return found[0].load()
    except (ImportError, AttributeError) as exc:
        raise KempModelError(
            f"graph builder {found[0].value!r} failed to load ({exc}); reinstall kemp-kg"
        ) from None


@dataclass(frozen=True)
class ChatConfig:
    """What ``kemp-model chat`` does.

    Attributes:
        run_dir: the run folder.
        index_dir: the knowledge index (``kemp-kg build-index``) to retrieve concepts from;
            ``None`` = the index recorded in the run's graph provenance (``index.path``).
        decode: the decoding configuration.
        device: ``auto`` | ``cpu`` | ``cuda``.
        builder: entry-point name of the graph builder.
        max_history_turns: the session keeps the newest N turns (the graph and the memory the
            model needs stay bounded however long the chat runs; ED histories have at most 7).
        max_message_chars: a longer message is refused, the session goes on (a 517 KB line
            once asked for 17 GB).
    """

    run_dir: Path
    index_dir: Path | None = None
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    device: str = "auto"
    builder: str = ENTRY_POINT_NAME
    max_history_turns: int = 16
    max_message_chars: int = 1000

    def __post_init__(self) -> None:
        if self.max_history_turns < 1 or self.max_message_chars < 1:
            raise ValueError("max_history_turns and max_message_chars must be >= 1")


@dataclass(frozen=True)
class ChatReply:
    """The model's answer to one message.

    Attributes:
        emotions: the three most likely emotions of the dialogue so far, with probabilities
            (empty for a model without an emotion classifier).
        concepts: injected knowledge, ``(word, concept, relation, intensity)`` (empty for
            models that do not use knowledge); ``word`` is ``""`` when the word is outside the
            vocabulary (the graph holds ``<unk>`` there, which is never shown).
        response: the generated reply (special tokens removed).
        turns: turns in the history after this reply.
        new_concepts: the concepts not already injected earlier in this conversation (what
            chat shows: the history is re-read every turn, so old concepts come back).
    """

    emotions: tuple[tuple[str, float], ...]
    concepts: tuple[tuple[str, str, str, float], ...]
    response: str
    turns: int
    new_concepts: tuple[tuple[str, str, str, float], ...] = ()


#: Vocabulary entries that are markers, not words: never shown to a chat user.
_SPECIAL = frozenset(schema.SPECIAL_TOKENS)


def visible_text(text: str) -> str:
    """``text`` without special tokens (``<cls>``, ``<unk>``, ``<pad>``, ...)."""
    return " ".join(word for word in text.split() if word not in _SPECIAL)


def _manifest(index_dir: Path) -> dict[str, Any] | None:
    """An index folder's ``manifest.json`` (``None`` when unreadable: the builder reports it)."""
    try:
        data = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_index(provenance: Mapping[str, Any]) -> Path | None:
    """The knowledge index folder named in a graph file's provenance (``index.path``), if any."""
    index = provenance.get("index")
    path = index.get("path") if isinstance(index, Mapping) else None
    return Path(path) if isinstance(path, str) and path else None


def _user_error(exc: Exception) -> bool:
    """Whether ``exc`` is one of kemp-kg's user-facing errors (``kemp_kg.errors.KempError`` and
    its subclasses: missing NLTK data, no index, ...), recognised by name because kemp-model may
    not import ``kemp_kg.errors``."""
    return any(
        cls.__name__ == "KempError" and cls.__module__.startswith("kemp_kg")
        for cls in type(exc).__mro__
    )


class ChatSession:
    """A conversation with a model; the history grows turn by turn.

    Args:
        model: a KEMP model in eval mode.
        vocab: its vocabulary.
        builder: a graph builder for that vocabulary (see the module docstring).
        decode: decoding configuration.
        device: where the model lives.
        provenance: recorded with each one-row graph (informational).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        vocab: Sequence[str],
        builder: GraphBuilder,
        decode: DecodeConfig,
        device: torch.device | str = "cpu",
        provenance: Mapping[str, Any] | None = None,
        max_history_turns: int = 16,
        max_message_chars: int = 1000,
    ) -> None:
        self.max_history_turns = max_history_turns
        self.max_message_chars = max_message_chars
        self.model = model.eval()
        self.vocab = tuple(vocab)
        self.builder = builder
        self.decode = decode
        self.device = torch.device(device)
        self.provenance = dict(provenance or {})
        self.history: list[tuple[str, str]] = []
        self.seen_concepts: set[tuple[str, str]] = set()
        #: warnings for the user (e.g. an index other than the run's, chosen with --index)
        self.notes: list[str] = []
        model_config = getattr(model, "config", None)
        self.classifier = bool(getattr(model_config, "emotion_classifier", True))
        self.knowledge = bool(getattr(model_config, "use_knowledge", True))

    @classmethod
    def open(cls, config: ChatConfig) -> ChatSession:
        """Load the run and the graph builder for its vocabulary and recorded provenance.

        Raises:
            CheckpointError / KempModelError: a bad run folder, no builder, or a bad index.
        """
        run = load_inference_run(config.run_dir, config.device)
        builder_class = load_graph_builder(config.builder)
        explicit = config.index_dir is not None
        index_dir = config.index_dir or recorded_index(run.provenance)
        if index_dir is None:
            raise KempModelError(
                f"{config.run_dir}: the run records no knowledge index; pass --index DIR"
            )
        if not Path(index_dir).exists():
            where = "" if explicit else " (the index recorded when the run's graphs were enriched)"
            raise KempModelError(
                f"{index_dir}: no knowledge index{where}; pass --index DIR with the folder "
                "`kemp-kg build-index` wrote"
            )
        notes = []
        mismatch = index_mismatch(run.provenance.get("index"), _manifest(Path(index_dir)))
        if mismatch and not explicit:
            raise KempModelError(
                f"{index_dir}: this knowledge index was {mismatch}; rebuild it from that "
                "source, or pass --index DIR (that index, or this one to chat with it knowingly)"
            )
        if mismatch:
            notes.append(f"--index {index_dir}: {mismatch}; the concepts differ from training")
        try:
            builder = builder_class(index_dir, run.vocab, run.provenance)
        except Exception as exc:
            if _user_error(exc):
                raise KempModelError(f"graph builder: {exc}") from None
            raise
        session = cls(
            run.model,
            run.vocab,
            builder,
            config.decode,
            run.device,
            run.provenance,
            config.max_history_turns,
            config.max_message_chars,
        )
        session.notes = notes
        return session

    def reset(self) -> None:
        """Forget the history (a new conversation)."""
        self.history.clear()
        self.seen_concepts.clear()

    def respond(self, message: str) -> ChatReply:
        """Add ``message`` as the speaker's turn, answer it, and add the answer as a listener turn.

        Only the newest ``max_history_turns`` turns are kept.

        Raises:
            ValueError: an empty message, or one longer than ``max_message_chars`` (the session
                and its history are unchanged).
        """
        message = " ".join(message.split())
        if not message:
            raise ValueError("empty message")
        if len(message) > self.max_message_chars:
            raise ValueError(
                f"message of {len(message):,} characters is longer than the limit of "
                f"{self.max_message_chars:,} (--max-message-chars); say it in fewer words"
            )
        turns = [*self.history, ("speaker", message)][-self.max_history_turns :]
        try:
            table = self.builder.build(turns)
        except Exception as exc:
            if _user_error(exc):
                raise KempModelError(f"graph builder: {exc}") from None
            raise
        if getattr(table, "num_rows", 1) != 1:
            raise KempModelError(f"graph builder returned {table.num_rows} rows for one dialogue")
        graphs = schema.GraphFile(
            table=table, vocab=self.vocab, provenance=self.provenance, paths=()
        )
        # the row has no reference (target_ids == []): collate gives it an EOS-only target,
        # which decoding never reads
        batch = GraphDataset(graphs, None).collate([0]).to(self.device)
        with torch.no_grad():
            logits = self.model.encode(batch).emotion_logits
            ids = generate(self.model, batch, self.decode)[0]
        response = visible_text(ids_to_text(ids, self.vocab))
        # an empty reply (nothing but special tokens) is not a turn the builder could read
        history = [*turns, ("listener", response)] if response else turns
        self.history = history[-self.max_history_turns :]
        emotions = tuple(emotion_top(logits.cpu())[0]) if self.classifier else ()
        concepts = (
            tuple(
                ("" if str(w) in _SPECIAL else str(w), str(c), str(r), float(i))
                for w, c, r, i in self.builder.concepts(table)
                if str(c) not in _SPECIAL
            )
            if self.knowledge
            else ()
        )
        new = tuple(c for c in concepts if (c[0], c[1]) not in self.seen_concepts)
        self.seen_concepts.update((c[0], c[1]) for c in concepts)
        return ChatReply(
            emotions=emotions,
            concepts=concepts,
            response=response,
            turns=len(self.history),
            new_concepts=new,
        )
