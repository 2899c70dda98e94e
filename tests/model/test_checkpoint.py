"""Bad input gives one-line errors saying what to rerun: graph files, run folders, checkpoints."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from kemp_kg import schema
from kemp_model import checkpoint as ckpt
from kemp_model.cli.app import main
from kemp_model.errors import CheckpointError


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["kemp-model", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    return exit_info.value.code, err


def assert_one_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err and "\n" not in err, err
    for needle in needles:
        assert needle in err, err


def train_args(graphs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--graphs",
        str(graphs),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--eval-every",
        "2",
        "--eval-examples",
        "8",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained_run(graph_file, tmp_path_factory) -> Path:
    from kemp_model.train import TrainJob, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(
        TrainJob(
            graphs=(graph_file,),
            out=out,
            preset="tiny",
            progress=False,
            train_overrides=(("max_steps", 2), ("eval_every", 2), ("eval_examples", 8)),
        )
    )
    return out


def _rewrite_metadata(
    source: Path, target: Path, drop: bytes | None = None, **changes: bytes
) -> Path:
    table = schema.open_graphs(source).table
    meta = dict(ipc.open_file(pa.memory_map(str(source))).schema.metadata)
    if drop:
        meta.pop(drop)
    meta.update({k.encode(): v for k, v in changes.items()})
    with (
        pa.OSFile(str(target), "wb") as sink,
        ipc.new_file(sink, table.schema.with_metadata(meta)) as w,
    ):
        w.write_table(table)
    return target


def test_graph_file_of_another_schema_version(graph_file, tmp_path, monkeypatch, capsys) -> None:
    other = _rewrite_metadata(graph_file, tmp_path / "v2.arrow", **{"kemp.schema_version": b"2.0"})
    code, err = run_cli(monkeypatch, capsys, *train_args(other, tmp_path / "run"))
    assert code == 2
    assert_one_line(err, "v2.arrow", "schema version 2.0", "rerun `kemp-kg enrich`")


def test_truncated_graph_file(graph_file, tmp_path, monkeypatch, capsys) -> None:
    cut = tmp_path / "cut.arrow"
    data = graph_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, err = run_cli(monkeypatch, capsys, *train_args(cut, tmp_path / "run"))
    assert code == 2
    assert_one_line(err, "cut.arrow", "rerun `kemp-kg enrich`")


def _damage_list_offsets(source: Path, target: Path, column: str = "context_ids") -> Path:
    """Copy ``source`` with one list offset of ``column`` (first record batch) pointing far past
    its values buffer: the footer and schema stay intact, so the file opens."""
    mapped = pa.memory_map(str(source))
    base = mapped.read_buffer(1).address  # where the file starts in memory
    offsets = ipc.open_file(mapped).get_batch(0).column(column).buffers()[1]
    at = offsets.address - base + 4  # the second int32 offset
    data = bytearray(source.read_bytes())
    data[at : at + 4] = (10**6).to_bytes(4, "little")
    target.write_bytes(bytes(data))
    return target


def test_graph_file_damaged_inside_a_record_batch(
    graph_file, trained_run, tmp_path, monkeypatch, capsys
) -> None:
    damaged = _damage_list_offsets(graph_file, tmp_path / "damaged.arrow")
    assert len(schema.open_graphs(damaged)) > 0  # opening (O(footer)) does not notice
    code, err = run_cli(monkeypatch, capsys, *train_args(damaged, tmp_path / "run"))
    assert code == 2
    assert_one_line(err, "damaged.arrow", "damaged record batch", "rerun `kemp-kg enrich`")
    assert not (tmp_path / "run").exists()
    for command in ("evaluate", "generate"):
        code, err = run_cli(
            monkeypatch,
            capsys,
            command,
            str(trained_run),
            "--graphs",
            str(damaged),
            "--split",
            "valid",
            "--limit",
            "2",
            "--device",
            "cpu",
        )
        assert code == 2, command
        assert_one_line(err, "damaged.arrow", "damaged record batch")


def test_graph_file_without_vocabulary(graph_file, tmp_path, monkeypatch, capsys) -> None:
    novocab = _rewrite_metadata(graph_file, tmp_path / "novocab.arrow", drop=b"kemp.vocab")
    code, err = run_cli(monkeypatch, capsys, *train_args(novocab, tmp_path / "run"))
    assert code == 2
    assert_one_line(err, "novocab.arrow", "no vocabulary", "rerun `kemp-kg enrich`")


def test_empty_train_split(tmp_path, monkeypatch, capsys, rows_factory, rows_writer) -> None:
    only_valid = rows_writer(tmp_path / "valid.arrow", rows_factory(4, split="valid"))
    code, err = run_cli(monkeypatch, capsys, *train_args(only_valid, tmp_path / "run"))
    assert code == 1
    assert_one_line(err, "'train' has no rows (it holds valid (4))", "--split train")


def test_resume_with_another_preset(graph_file, trained_run, monkeypatch, capsys) -> None:
    code, err = run_cli(
        monkeypatch,
        capsys,
        "train",
        "--graphs",
        str(graph_file),
        "--out",
        str(trained_run),
        "--preset",
        "kemp",
        "--resume",
        "--no-progress",
    )
    assert code == 3
    assert_one_line(err, "preset 'tiny'", "--preset tiny")


def test_resume_with_another_vocabulary(
    trained_run, tmp_path, monkeypatch, capsys, rows_factory, rows_writer
) -> None:
    vocab = (*schema.SPECIAL_TOKENS, "other", "words")
    rows = rows_factory(20)
    for row in rows:  # keep ids inside the small vocabulary
        row["context_ids"] = [min(i, 9) for i in row["context_ids"]]
        row["concept_ids"] = [min(i, 9) for i in row["concept_ids"]]
        row["target_ids"] = [min(i, 9) for i in row["target_ids"]]
    other = rows_writer(tmp_path / "other.arrow", rows, vocab=vocab)
    code, err = run_cli(
        monkeypatch,
        capsys,
        "train",
        "--graphs",
        str(other),
        "--out",
        str(trained_run),
        "--resume",
        "--no-progress",
    )
    assert code == 3
    assert_one_line(err, "another vocabulary", "other.arrow")


def test_existing_run_needs_resume(graph_file, trained_run, monkeypatch, capsys) -> None:
    code, err = run_cli(monkeypatch, capsys, *train_args(graph_file, trained_run))
    assert code == 1
    assert_one_line(err, "already holds a run", "--resume")


def test_resume_without_a_checkpoint(graph_file, tmp_path, monkeypatch, capsys) -> None:
    code, err = run_cli(monkeypatch, capsys, *train_args(graph_file, tmp_path / "none", "--resume"))
    assert code == 3
    assert_one_line(err, "nothing to resume")


def test_missing_embeddings(graph_file, tmp_path, monkeypatch, capsys) -> None:
    code, err = run_cli(
        monkeypatch,
        capsys,
        *train_args(graph_file, tmp_path / "run", "--embeddings", str(tmp_path / "glove.npy")),
    )
    assert code == 1
    assert_one_line(err, "glove.npy", "no such embeddings file")


def test_load_run_rejects_corrupt_and_foreign_weights(trained_run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    (copy / "best.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        ckpt.load_run(copy)
    shutil.copy(trained_run / "best.safetensors", copy / "best.safetensors")
    config = json.loads((copy / "config.json").read_text())
    config["model"]["hidden_dim"] = 64
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="another preset or vocabulary"):
        ckpt.load_run(copy)
    with pytest.raises(CheckpointError, match="no config.json"):
        ckpt.load_run(tmp_path / "nowhere")


def test_load_run_gives_the_trained_model(trained_run) -> None:
    model, config, vocab = ckpt.load_run(trained_run, which="last")
    assert not model.training and config.train.max_steps == 2
    assert ckpt.vocab_checksum(vocab) == config.vocab_sha256


def test_embeddings_from_txt_and_npy(tmp_path) -> None:
    import numpy as np

    from kemp_model.embeddings import load_vectors

    vocab = (*schema.SPECIAL_TOKENS, "happy", "Sad", "missing")
    (tmp_path / "v.txt").write_text("happy 1 2 3\nsad 4 5 6\nother 7 8 9\n")
    vectors = load_vectors(tmp_path / "v.txt", vocab)
    assert vectors.dim == 3 and vectors.present.tolist()[-3:] == [True, True, False]
    assert vectors.table[-2].tolist() == [4.0, 5.0, 6.0]
    np.save(tmp_path / "v.npy", np.array([[1, 2], [3, 4]], dtype=np.float32))
    (tmp_path / "v.vocab.txt").write_text("sad\nhappy\n")
    vectors = load_vectors(tmp_path / "v.npy", vocab)
    assert vectors.table[len(schema.SPECIAL_TOKENS)].tolist() == [3.0, 4.0]
    assert vectors.coverage == pytest.approx(2 / len(vocab))


def test_resume_from_a_corrupt_state_file(
    graph_file, trained_run, tmp_path, monkeypatch, capsys
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    state = copy / "last.state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    code, err = run_cli(
        monkeypatch,
        capsys,
        "train",
        "--graphs",
        str(graph_file),
        "--out",
        str(copy),
        "--resume",
        "--no-progress",
    )
    assert code == 3
    assert_one_line(err, "last.state.safetensors", "corrupt checkpoint")


@pytest.mark.parametrize("failure", ["safetensors", "oserror"])
def test_unwritable_checkpoint_is_a_one_line_error_and_keeps_the_previous_file(
    trained_run, tmp_path, monkeypatch, failure
) -> None:
    import errno

    import torch
    from safetensors import SafetensorError

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    model, _, _ = ckpt.load_run(run)
    optimizer = torch.optim.Adam(model.parameters())

    def full(*args, **kwargs):
        if failure == "safetensors":  # how safetensors reports ENOSPC
            raise SafetensorError(
                "Error while serializing: I/O error: No space left on device (os error 28)"
            )
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(
        CheckpointError, match="last.safetensors: cannot write .*No space left.*--resume"
    ):
        ckpt.save_weights(run / ckpt.LAST_FILE, model, {})
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        ckpt.save_training_state(
            run / ckpt.STATE_FILE, model, optimizer, [torch.get_rng_state()], {}
        )
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # old files kept, no temp left
