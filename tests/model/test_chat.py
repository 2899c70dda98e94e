"""Chat: the history grows turn by turn, /reset and /quit work, stdin can be a pipe.

The graph builder normally comes from kemp-kg's entry point; these tests register a small
stand-in builder (whitespace tokens, one concept per known word) so they need no index.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

import kemp_model.cli  # noqa: F401  (registers the commands)
from kemp_kg import schema
from kemp_model import chat as chat_module
from kemp_model.chat import ChatConfig, ChatSession, load_graph_builder
from kemp_model.checkpoint import RunConfig, save_weights, vocab_checksum, write_run_config
from kemp_model.cli.app import app
from kemp_model.config import tiny
from kemp_model.decoding import DecodeConfig
from kemp_model.errors import KempModelError
from kemp_model.model import KEMP


class StandInBuilder:
    """Whitespace tokens; each known word gets the concept 'cake' through RelatedTo."""

    builds: list[list[tuple[str, str]]] = []

    def __init__(self, index_dir: Path, vocab: Sequence[str], provenance: Mapping) -> None:
        self.vocab = tuple(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def build(self, turns: Sequence[tuple[str, str]]) -> pa.Table:
        StandInBuilder.builds.append(list(turns))
        ids, roles = [schema.CLS_ID], [int(schema.Role.CLS)]
        for role, text in turns:
            role_id = int(schema.Role.SPEAKER if role == "speaker" else schema.Role.LISTENER)
            for word in text.lower().split():
                ids.append(self.index.get(word, schema.UNK_ID))
                roles.append(role_id)
        known = [p for p in range(1, len(ids)) if ids[p] != schema.UNK_ID][:3]
        row = {
            "example_id": "chat-0",
            "conv_id": "chat",
            "split": "chat",
            "emotion": schema.UNKNOWN_EMOTION,
            "history": [t for _, t in turns],
            "target": "",
            "context_ids": ids,
            "context_roles": roles,
            "context_intensity": [0.5] * len(ids),
            "concept_ids": [self.index["cake"]] * len(known),
            "concept_anchor": known,
            "concept_relation": [0] * len(known),
            "concept_weight": [1.0] * len(known),
            "concept_intensity": [0.7] * len(known),
            "target_ids": [],
        }
        return pa.Table.from_pylist([row], schema=schema.GRAPH_SCHEMA)

    def concepts(self, table: pa.Table) -> list[tuple[str, str, str, float]]:
        row = table.to_pylist()[0]
        return [
            (self.vocab[row["context_ids"][a]], self.vocab[c], schema.RELATIONS[r], i)
            for a, c, r, i in zip(
                row["concept_anchor"],
                row["concept_ids"],
                row["concept_relation"],
                row["concept_intensity"],
            )
        ]


@pytest.fixture(scope="module")
def run_dir(graph_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    graphs = schema.open_graphs(graph_file)
    preset = tiny()
    torch.manual_seed(0)
    model = KEMP(preset.model, len(graphs.vocab))
    folder = tmp_path_factory.mktemp("runs") / "chat"
    folder.mkdir()
    config = RunConfig(
        preset=preset.name,
        model=preset.model,
        train=preset.train,
        vocab_size=len(graphs.vocab),
        vocab_sha256=vocab_checksum(graphs.vocab),
        provenance={"preset": "paper"},
    )
    write_run_config(folder, config, graphs.vocab)
    save_weights(folder / "best.safetensors", model, {"vocab_sha256": config.vocab_sha256})
    return folder


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> type[StandInBuilder]:
    """Register StandInBuilder as the `default` entry point of `kemp.graph_builder`."""
    entry = importlib.metadata.EntryPoint(
        name="default", value=f"{__name__}:StandInBuilder", group=chat_module.ENTRY_POINT_GROUP
    )
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        if kwargs.get("group") == chat_module.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([entry])
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    StandInBuilder.builds = []
    return StandInBuilder


def test_missing_entry_point_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda **kw: importlib.metadata.EntryPoints([])
    )
    with pytest.raises(KempModelError, match="install kemp-kg"):
        load_graph_builder()


def test_entry_point_is_found(stand_in: type[StandInBuilder]) -> None:
    assert load_graph_builder() is StandInBuilder


def test_history_grows_and_resets(run_dir: Path, tmp_path: Path, stand_in) -> None:
    session = ChatSession.open(
        ChatConfig(
            run_dir=run_dir, index_dir=tmp_path, decode=DecodeConfig(max_len=5), device="cpu"
        )
    )
    first = session.respond("my dog won a prize")
    assert first.turns == 2 and len(first.emotions) == 3
    assert sum(p for _, p in first.emotions) <= 1.0 + 1e-6
    assert first.emotions == tuple(sorted(first.emotions, key=lambda e: -e[1]))
    assert first.concepts[0] == ("my", "cake", "RelatedTo", pytest.approx(0.7))
    assert 1 <= len(first.response.split()) <= 5
    second = session.respond("  you   must be proud ")
    assert second.turns == 4
    assert stand_in.builds[-1] == [
        ("speaker", "my dog won a prize"),
        ("listener", first.response),
        ("speaker", "you must be proud"),
    ]
    session.reset()
    session.respond("sad")
    assert stand_in.builds[-1] == [("speaker", "sad")]
    with pytest.raises(ValueError, match="empty message"):
        session.respond("   ")


def test_history_is_bounded_and_a_long_message_is_refused(
    run_dir: Path, tmp_path: Path, stand_in
) -> None:
    session = ChatSession.open(
        ChatConfig(
            run_dir=run_dir,
            index_dir=tmp_path,
            decode=DecodeConfig(max_len=3),
            device="cpu",
            max_history_turns=3,
            max_message_chars=50,
        )
    )
    for i in range(5):
        session.respond(f"message {i}")
    assert [len(b) for b in stand_in.builds] == [1, 3, 3, 3, 3]  # never more than 3 turns
    assert stand_in.builds[-1][-1] == ("speaker", "message 4") and len(session.history) == 3
    before = list(session.history)
    with pytest.raises(ValueError, match="50"):
        session.respond("word " * 100)
    assert session.history == before and len(stand_in.builds) == 5


def test_cli_chat_skips_a_long_message_and_a_non_utf8_line(
    run_dir: Path, tmp_path: Path, stand_in
) -> None:
    stdin = b"my dog won\n\xff\xfe not text\n" + b"word " * 100_000 + b"\nthat is great\n"
    result = CliRunner().invoke(
        app,
        ["chat", str(run_dir), "--index", str(tmp_path), "--device", "cpu", "--max-len", "3"],
        input=stdin,
    )
    assert result.exit_code == 0, result.output[-2000:]
    assert result.output.count("kemp>") == 2 and "2 replies" in result.output
    assert "not UTF-8" in result.output
    assert "--max-message-chars" in " ".join(result.output.split())
    assert [len(b) for b in stand_in.builds] == [1, 3]  # the session went on


def test_missing_index_folder(run_dir: Path, tmp_path: Path, stand_in) -> None:
    with pytest.raises(KempModelError, match="build-index"):
        ChatSession.open(ChatConfig(run_dir=run_dir, index_dir=tmp_path / "none", device="cpu"))


def test_cli_chat_with_piped_stdin(run_dir: Path, tmp_path: Path, stand_in) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["chat", str(run_dir), "--index", str(tmp_path), "--device", "cpu", "--max-len", "4"],
        input="my dog won a prize\n\nthat is great news\n/reset\nsad\n/quit\nnever read\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("kemp>") == 3
    assert result.output.count("emotion:") == 3
    assert "my -> cake (RelatedTo, 0.70)" in result.output
    assert "(new conversation)" in result.output and "3 replies" in result.output
    assert [len(b) for b in stand_in.builds] == [1, 3, 1]
    assert "never read" not in json.dumps(stand_in.builds)


def test_chat_end_to_end_with_the_kemp_kg_builder(
    run_dir: Path, tmp_path: Path, nltk_data: Path
) -> None:
    """The real entry point, a real (sample) index, stdin piped into the installed command."""
    import os
    import subprocess
    import sys

    from kemp_kg.index import build_index
    from kemp_kg.samples_data import write_samples

    write_samples(tmp_path / "sample")
    build_index(
        tmp_path / "sample" / "knowledge.tsv",
        tmp_path / "sample" / "lexicon.tsv",
        tmp_path / "index",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kemp_model.cli import main; main()",
            "chat",
            str(run_dir),
            "--index",
            str(tmp_path / "index"),
            "--device",
            "cpu",
            "--max-len",
            "5",
        ],
        input="my birthday party was great\ni am scared of the dark\n/quit\n",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NLTK_DATA": str(nltk_data), "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.count("kemp>") == 2 and out.count("emotion:") == 2
    assert "birthday -> " in out  # knowledge from the sample index reached the graph
    assert "2 replies" in out


def test_builder_user_errors_become_one_line_errors(
    run_dir: Path, tmp_path: Path, stand_in, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kemp_kg.errors import InputError

    session = ChatSession.open(ChatConfig(run_dir=run_dir, index_dir=tmp_path, device="cpu"))

    def broken(self, turns):
        raise InputError("NLTK data missing: stopwords")

    monkeypatch.setattr(StandInBuilder, "build", broken)
    with pytest.raises(KempModelError, match="graph builder: NLTK data missing"):
        session.respond("hello")

    def buggy(self, turns):
        raise RuntimeError("a bug")

    monkeypatch.setattr(StandInBuilder, "build", buggy)
    with pytest.raises(RuntimeError, match="a bug"):  # bugs are not dressed up as user errors
        session.respond("hello")


def test_index_defaults_to_the_one_in_the_provenance(
    run_dir: Path, tmp_path: Path, stand_in
) -> None:
    from kemp_model.chat import recorded_index

    assert recorded_index({"index": {"path": str(tmp_path)}}) == tmp_path
    assert recorded_index({"index": "x"}) is None and recorded_index({}) is None
    with pytest.raises(KempModelError, match="records no knowledge index; pass --index"):
        ChatSession.open(ChatConfig(run_dir=run_dir, device="cpu"))  # provenance has no index
