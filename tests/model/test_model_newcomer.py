"""A newcomer's first hour on the kemp-model side: chat commands and history, no special tokens,
concepts shown once, help texts with real defaults and choices, --version, splits listed."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest
import test_chat  # the chat tests' stand-in graph builder and run (same module pytest runs)
from typer.testing import CliRunner

import kemp_model.cli  # noqa: F401  (registers the commands)
from kemp_kg import schema
from kemp_model import chat as chat_module
from kemp_model.chat import ChatConfig, ChatSession, visible_text
from kemp_model.cli.app import app
from kemp_model.config import PRESETS
from kemp_model.decoding import DecodeConfig

run_dir = test_chat.run_dir  # fixtures shared with tests/model/test_chat.py
stand_in = test_chat.stand_in


def chat(run_dir: Path, index: Path, text: str) -> str:
    result = CliRunner().invoke(
        app,
        ["chat", str(run_dir), "--index", str(index), "--device", "cpu", "--max-len", "4"],
        input=text,
    )
    assert result.exit_code == 0, result.output
    return result.output


# ------------------------------------------------------------------------------------------ chat


def test_help_and_unknown_commands_stay_local(run_dir: Path, tmp_path: Path, stand_in) -> None:
    out = chat(run_dir, tmp_path, "/help\n/HELP\n/frobnicate\nhello there\n/exit\nnot read\n")
    assert out.count("/reset") >= 2 and "/quit" in out  # /help listed the commands (twice)
    assert "unknown command /frobnicate; /help lists them" in out
    assert [turns for turns in stand_in.builds] == [[("speaker", "hello there")]]
    assert "1 replies" in out


def test_special_tokens_never_shown(
    run_dir: Path, tmp_path: Path, stand_in, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply made of special tokens and a concept hanging off an <unk> word show none."""
    monkeypatch.setattr(
        chat_module, "ids_to_text", lambda ids, vocab: "<cls> that <unk> is <pad> nice <knowledge>"
    )
    out = chat(run_dir, tmp_path, "zzzunknownword my\n")
    for token in schema.SPECIAL_TOKENS:
        assert token not in out, (token, out)
    assert "kemp> that is nice" in out
    assert visible_text("<sos> a <eos> b <speaker>") == "a b"


def test_an_all_special_reply_is_not_a_history_turn(
    run_dir: Path, tmp_path: Path, stand_in, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_module, "ids_to_text", lambda ids, vocab: "<cls> <unk>")
    session = ChatSession.open(
        ChatConfig(
            run_dir=run_dir, index_dir=tmp_path, device="cpu", decode=DecodeConfig(max_len=3)
        )
    )
    assert session.respond("my dog").response == ""
    session.respond("my cat")  # the builder never sees an empty listener turn
    assert stand_in.builds[-1] == [("speaker", "my dog"), ("speaker", "my cat")]


def test_concepts_from_earlier_turns_are_not_repeated(
    run_dir: Path, tmp_path: Path, stand_in
) -> None:
    session = ChatSession.open(
        ChatConfig(
            run_dir=run_dir, index_dir=tmp_path, device="cpu", decode=DecodeConfig(max_len=3)
        )
    )
    first = session.respond("my dog")
    assert first.new_concepts == first.concepts and first.concepts
    second = session.respond("my dog")
    assert len(second.concepts) >= len(first.concepts)  # the graph still holds them
    assert not set(second.new_concepts) & set(first.concepts)
    session.reset()
    assert session.respond("my dog").new_concepts == first.concepts
    out = chat(run_dir, tmp_path, "my dog\nmy dog\n")
    assert out.count("my -> cake") == 1 and "from earlier turns" in out


def test_interactive_chat_keeps_a_readline_history(
    run_dir: Path, tmp_path: Path, stand_in, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, lines come from input() with readline loaded, and are kept in the history
    file (Up/Down recall them next time)."""
    import builtins
    import io
    import sys

    from kemp_model.cli import chat as chat_cli

    readline = pytest.importorskip("readline")
    history = tmp_path / "history"
    monkeypatch.setattr(chat_cli, "HISTORY_FILE", history)
    lines = iter(["my dog won", "/quit"])
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        line = next(lines)
        readline.add_history(line)  # what readline's input() does for a typed line
        return line

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(builtins, "input", fake_input)
    monkeypatch.setattr(sys, "stdin", Tty(""))
    readline.clear_history()
    chat_cli.chat_command(
        run_dir,
        index=tmp_path,
        device="cpu",
        decode=chat_cli.Decode.greedy,
        beam_size=None,
        no_repeat_ngram=None,
        top_k=None,
        top_p=None,
        temperature=None,
        length_penalty=None,
        max_len=3,
        seed=None,
        max_history_turns=16,
        max_message_chars=1000,
    )
    assert prompts == ["you> ", "you> "]
    assert "my dog won" in history.read_text(encoding="utf-8")
    assert stand_in.builds == [[("speaker", "my dog won")]]


# ----------------------------------------------------------------------------- help and version


def test_version() -> None:
    from kemp_model import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"kemp-model {__version__}"


@pytest.mark.parametrize("command", ["train", "evaluate", "generate", "chat", "score"])
def test_help_has_no_bool_markers(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0 and "<bool>" not in result.output


def test_train_help_shows_preset_choices_and_real_defaults() -> None:
    output = " ".join(
        CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output.split()
    )
    assert "[" + "|".join(PRESETS) + "]" in output
    assert "preset default" not in output
    kemp, tiny = PRESETS["kemp"]().train, PRESETS["tiny"]().train
    assert f"Optimiser steps. [default: {kemp.max_steps}; " in output
    assert f"tiny: {tiny.max_steps}" in output
    assert f"[default: {kemp.batch_size}; " in output
    assert "[official|sum|mean]" in output


def test_unknown_preset_lists_the_presets() -> None:
    result = CliRunner().invoke(app, ["train", "--graphs", "x.arrow", "--preset", "big"])
    assert result.exit_code != 0
    assert all(name in result.output for name in PRESETS)


@pytest.mark.parametrize("command", ["evaluate", "generate", "chat"])
def test_decoding_help_shows_each_presets_value(command: str) -> None:
    output = " ".join(
        CliRunner().invoke(app, [command, "--help"], terminal_width=200).output.split()
    )
    assert "[greedy|beam|topk|topp|diverse]" in output.replace("<", "[").replace(">", "]")
    assert "Beam width (beam). [default: 5]" in output
    assert "[default: 3; greedy: 0]" in output  # --no-repeat-ngram
    assert "[default: 1.0; diverse: 0.7]" in output  # --temperature
    assert "[default: 30]" in output  # --max-len


def test_chat_help_mentions_commands_and_nltk_data() -> None:
    output = CliRunner().invoke(app, ["chat", "--help"], terminal_width=100).output
    for word in ("/help", "/reset", "/quit", "NLTK_DATA", "history"):
        assert word in output


# -------------------------------------------------------------------------------------- splits


def test_unknown_split_lists_the_splits_with_counts(run_dir: Path, graph_file: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(run_dir),
            "--graphs",
            str(graph_file),
            "--split",
            "dev",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code != 0
    message = str(result.exception) if result.exception else result.output
    graphs = schema.open_graphs(graph_file)
    present = sorted(set(graphs.table.column("split").to_pylist()))
    assert present and all(f"{name} (" in message for name in present), message
    assert "pass one of those as --split" in message


# ------------------------------------------------------------------------------- another index


def _index_info(path: Path, source_sha: str) -> dict:
    return {
        "format": "kemp-index/1",
        "path": str(path),
        "source": {"kind": "triples", "path": "/data/k.tsv", "sha256": source_sha},
        "lexicon": {"sha256": None},
    }


def _run_with_index(run_dir: Path, tmp_path: Path, info: dict, graphs: list[str]) -> Path:
    import json
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["provenance"] = {**config["provenance"], "index": info}
    config["graphs"] = graphs
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def _index_folder(path: Path, source_sha: str) -> Path:
    import json

    path.mkdir()
    manifest = {k: v for k, v in _index_info(path, source_sha).items() if k != "path"}
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def test_chat_refuses_a_recorded_index_rebuilt_from_another_source(
    run_dir: Path, tmp_path: Path, stand_in
) -> None:
    from kemp_model.errors import KempModelError

    index = _index_folder(tmp_path / "index", "b" * 64)
    run = _run_with_index(run_dir, tmp_path, _index_info(index, "a" * 64), [])
    with pytest.raises(KempModelError) as info:
        ChatSession.open(ChatConfig(run_dir=run, device="cpu"))
    message = str(info.value)
    assert "--index" in message and "trained with graphs built from" in message
    assert schema.index_checksum(_index_info(index, "a" * 64))[:12] in message
    # chosen explicitly: a warning, not a refusal
    session = ChatSession.open(ChatConfig(run_dir=run, index_dir=index, device="cpu"))
    assert len(session.notes) == 1 and "differ from training" in session.notes[0]
    # the same index: nothing to say
    same = _run_with_index(run_dir, tmp_path / "s", _index_info(index, "b" * 64), [])
    assert ChatSession.open(ChatConfig(run_dir=same, device="cpu")).notes == []


def test_chat_without_the_recorded_index_mentions_index_flag(
    run_dir: Path, tmp_path: Path, stand_in
) -> None:
    from kemp_model.errors import KempModelError

    run = _run_with_index(run_dir, tmp_path, _index_info(Path("work/demo/index"), "a" * 64), [])
    with pytest.raises(KempModelError, match="pass --index DIR"):
        ChatSession.open(ChatConfig(run_dir=run, device="cpu"))


def test_evaluate_refuses_recorded_graphs_re_enriched_with_another_index(
    run_dir: Path, tmp_path: Path, rows_factory, graph_file: Path
) -> None:
    import warnings

    from kemp_model.errors import KempModelError
    from kemp_model.evaluate import EvalConfig, IndexMismatchWarning, evaluate_run

    vocab = schema.open_graphs(graph_file).vocab  # the run's vocabulary
    rows = rows_factory(4, split="test")
    graphs = schema.write_graphs(
        tmp_path / "g.arrow",
        [pa.Table.from_pylist(rows, schema=schema.GRAPH_SCHEMA)],
        vocab=vocab,
        provenance={"index": _index_info(tmp_path / "other", "b" * 64)},
    )
    run = _run_with_index(run_dir, tmp_path, _index_info(tmp_path / "i", "a" * 64), [str(graphs)])
    config = EvalConfig(run_dir=run, split="test", device="cpu", decode=DecodeConfig(max_len=2))
    with pytest.raises(KempModelError, match="knowledge index changed since training"):
        evaluate_run(config)
    explicit = EvalConfig(
        run_dir=run,
        graphs=(graphs,),
        split="test",
        device="cpu",
        decode=DecodeConfig(max_len=2),
        out_dir=tmp_path / "eval",
    )
    with pytest.warns(IndexMismatchWarning, match="trained with graphs built from"):
        evaluate_run(explicit)
    same = _run_with_index(
        run_dir, tmp_path / "s", _index_info(tmp_path / "o", "b" * 64), [str(graphs)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexMismatchWarning)
        evaluate_run(
            EvalConfig(
                run_dir=same,
                split="test",
                device="cpu",
                decode=DecodeConfig(max_len=2),
                out_dir=tmp_path / "e2",
            )
        )


# ------------------------------------------------------------------------------------- training


def test_a_handful_of_conversations_trains_at_the_default_batch_size(
    tmp_path: Path, rows_factory, rows_writer
) -> None:
    """5 training examples and preset batch 8: the batch becomes 5, with a note."""
    from kemp_model import checkpoint as ckpt
    from kemp_model.train import TrainJob, train

    graphs = rows_writer(
        tmp_path / "g.arrow", rows_factory(5) + rows_factory(2, seed=2, split="valid")
    )
    summary = train(
        TrainJob(
            graphs=(graphs,),
            out=tmp_path / "run",
            preset="tiny",
            progress=False,
            train_overrides=(("max_steps", 3),),
        )
    )
    assert summary.steps == 3
    assert any("batch size lowered from 8 to 5" in note for note in summary.notes), summary.notes
    assert ckpt.read_run_config(tmp_path / "run")[0].train.batch_size == 5


def test_a_split_without_training_rows_says_how_to_give_one(
    tmp_path: Path, rows_factory, rows_writer
) -> None:
    from kemp_model.errors import KempModelError
    from kemp_model.train import TrainJob, train

    graphs = rows_writer(tmp_path / "g.arrow", rows_factory(3, split="test"))
    message = r'has no rows \(it holds test \(3\)\); give the dialogues a "split"'
    with pytest.raises(KempModelError, match=message):
        train(TrainJob(graphs=(graphs,), out=tmp_path / "run", preset="tiny", progress=False))


def test_tiny_caps_validation(tmp_path: Path, rows_factory, rows_writer, monkeypatch) -> None:
    """`--preset tiny` validates on at most TINY_EVAL_EXAMPLES rows, however big the split."""
    from kemp_model import train as train_module
    from kemp_model.config import TINY_EVAL_EXAMPLES, get_preset
    from kemp_model.train import TrainJob, train

    assert get_preset("tiny").train.eval_examples == TINY_EVAL_EXAMPLES > 0
    monkeypatch.setattr("kemp_model.config.TINY_EVAL_EXAMPLES", 6)
    assert get_preset("tiny").train.eval_examples == 6
    validated: list[int] = []
    real = train_module.BatchSampler

    def sampler(sizes, **kwargs):
        if kwargs.get("shuffle") is False:
            validated.append(len(sizes))
        return real(sizes, **kwargs)

    monkeypatch.setattr(train_module, "BatchSampler", sampler)
    graphs = rows_writer(
        tmp_path / "g.arrow", rows_factory(16) + rows_factory(20, seed=2, split="valid")
    )
    train(
        TrainJob(
            graphs=(graphs,),
            out=tmp_path / "run",
            preset="tiny",
            progress=False,
            train_overrides=(("max_steps", 2),),
        )
    )
    assert validated == [6]


def test_examples_per_s_counts_training_steps_only(
    graph_file: Path, tmp_path: Path, monkeypatch
) -> None:
    """One throughput figure: validation and checkpoint time is reported apart, not averaged in
    (the summary said 1.1 examples/s while the bar said 8)."""
    from kemp_model.train import Trainer, TrainJob, read_metrics, train

    real = Trainer._validate

    def slow_validate(self):
        time.sleep(0.4)
        return real(self)

    monkeypatch.setattr(Trainer, "_validate", slow_validate)
    summary = train(
        TrainJob(
            graphs=(graph_file,),
            out=tmp_path / "run",
            preset="tiny",
            progress=False,
            threads=1,
            train_overrides=(("max_steps", 10), ("eval_every", 5), ("log_every", 5)),
        )
    )
    assert summary.validation_s >= 0.8
    training_s = summary.elapsed_s - summary.validation_s
    assert summary.examples_per_s == pytest.approx(summary.examples / training_s, rel=0.1)
    # the second logged window follows a validation: its figure leaves that pause out too
    windows = [r["examples_per_s"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert windows[1] > 40 / 0.4  # 40 examples could not have taken the 0.4 s pause


def test_cpu_guidance_when_the_eta_is_hours() -> None:
    from kemp_model.train import cpu_guidance

    line = cpu_guidance("cpu", "kemp", remaining_steps=26_000, seconds_per_step=1.8)
    assert line is not None and "13.0 h" in line
    for hint in ("--preset tiny", "--max-steps", "GPU", "--device cuda"):
        assert hint in line
    assert cpu_guidance("cpu", "kemp", remaining_steps=1_000, seconds_per_step=1.8) is None
    assert cpu_guidance("cuda:0", "kemp", remaining_steps=26_000, seconds_per_step=1.8) is None
    assert "--preset tiny" not in cpu_guidance("cpu", "tiny", 10**6, 1.0)


def test_cpu_guidance_is_shown_after_the_first_steps(
    graph_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from kemp_model import train as train_module
    from kemp_model.train import TrainJob, train

    monkeypatch.setattr(train_module, "GUIDANCE_AFTER_STEPS", 2)
    monkeypatch.setattr(train_module, "GUIDANCE_OVER_S", 0.0)  # any schedule counts as long
    summary = train(
        TrainJob(
            graphs=(graph_file,),
            out=tmp_path / "run",
            preset="tiny",
            progress=False,
            train_overrides=(("max_steps", 4),),
        )
    )
    notes = [n for n in summary.notes if "to go on this CPU" in n]
    assert len(notes) == 1
    assert "note: " + notes[0] in capsys.readouterr().err
