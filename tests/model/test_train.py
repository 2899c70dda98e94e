"""The training recipe: loss goes down, resume is bit-exact (also after kill -9), DDP == 1 process."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kemp_model import checkpoint as ckpt
from kemp_model.train import TrainJob, noam_lr, read_metrics, train

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def job(graph_file: Path, out: Path, steps: int, **train) -> TrainJob:
    overrides = {"max_steps": steps, "eval_every": 15, "log_every": 4, "eval_examples": 16, **train}
    return TrainJob(
        graphs=(graph_file,),
        out=out,
        preset="tiny",
        train_overrides=tuple(overrides.items()),
        progress=False,
    )


def train_losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run) if r["kind"] == "train"]


def test_noam_schedule_peaks_at_warmup() -> None:
    lrs = [noam_lr(s, 300, 8000, 1.0) for s in (1, 4000, 8000, 16000)]
    assert lrs[0] < lrs[1] < lrs[2] > lrs[3]
    assert lrs[2] == pytest.approx(300**-0.5 * 8000**-0.5)


def test_tiny_run_lowers_the_loss_and_writes_the_run_folder(graph_file, tmp_path) -> None:
    summary = train(job(graph_file, tmp_path / "run", 60))
    losses = [loss for _, loss in train_losses(tmp_path / "run")]
    assert summary.steps == 60 and len(losses) == 15
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5
    for name in (
        "config.json",
        "vocab.json",
        "best.safetensors",
        "last.safetensors",
        "last.state.safetensors",
        "metrics.jsonl",
        "curves.png",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    model, config, vocab = ckpt.load_run(tmp_path / "run")
    assert config.preset == "tiny" and len(vocab) == model.vocab_size
    assert summary.best_perplexity is not None and summary.best_perplexity < 1000


def test_resume_reproduces_the_uninterrupted_run_exactly(graph_file, tmp_path) -> None:
    # 45 steps straight vs 30 steps, stop, resume to 45. Checkpoints every 15 steps and a log
    # window of 4 that straddles the checkpoint (step 30 is not a multiple of 4); dropout is on.
    train(job(graph_file, tmp_path / "a", 45))
    train(job(graph_file, tmp_path / "b", 30))
    summary = train(
        TrainJob(
            graphs=(graph_file,),
            out=tmp_path / "b",
            resume=True,
            train_overrides=(("max_steps", 45),),
            progress=False,
        )
    )
    assert summary.resumed_from == 30 and summary.steps == 45
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    a, b = (
        load_file(tmp_path / "a" / "last.safetensors"),
        load_file(tmp_path / "b" / "last.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_kill_9_reproduces_the_loss_curve(graph_file, tmp_path) -> None:
    steps = 240
    args = [
        str(BIN / "kemp-model"),
        "train",
        "--graphs",
        str(graph_file),
        "--preset",
        "tiny",
        "--max-steps",
        str(steps),
        "--eval-every",
        "10",
        "--eval-examples",
        "8",
        "--patience",
        "0",
        "--no-progress",
    ]
    reference = tmp_path / "reference"
    subprocess.run([*args, "--out", str(reference)], check=True, capture_output=True)
    victim = tmp_path / "victim"
    proc = subprocess.Popen(
        [*args, "--out", str(victim)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until a few checkpoints exist, then kill mid-run
        records = read_metrics(victim)
        if any(r["kind"] == "valid" and r["step"] >= 60 for r in records):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it was killed"
    killed_at = max(r["step"] for r in read_metrics(victim))
    assert killed_at < steps, "the run finished before it was killed"
    subprocess.run([*args, "--out", str(victim), "--resume"], check=True, capture_output=True)
    assert train_losses(victim) == train_losses(reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_key_bias(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Drop key biases: softmax ignores a constant per query, so their gradient is exactly zero
    in real arithmetic and only rounding noise, which Adam's normalisation amplifies to +-lr."""
    if name.endswith("qkv.bias"):  # [q | k | v]
        third = tensor.shape[0] // 3
        return torch.cat([tensor[:third], tensor[2 * third :]])
    if name.endswith("key_value.bias"):  # [k | v]
        return tensor[tensor.shape[0] // 2 :]
    if name.endswith("key.bias"):
        return tensor[:0]
    return tensor


def test_two_process_ddp_equals_one_process(graph_file, tmp_path) -> None:
    torchrun = BIN / "torchrun"
    common = [
        "train",
        "--graphs",
        str(graph_file),
        "--preset",
        "tiny",
        "--batch-size",
        "8",
        "--max-steps",
        "6",
        "--eval-every",
        "3",
        "--eval-examples",
        "16",
        "--dropout",
        "0",
        "--no-progress",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [str(BIN / "kemp-model"), *common, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert single.returncode == 0, single.stderr
    double = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            str(BIN / "kemp-model"),
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-2000:]
    one = load_file(tmp_path / "one" / "last.safetensors")
    two = load_file(tmp_path / "two" / "last.safetensors")
    for name in one:
        a, b = _without_key_bias(name, one[name]), _without_key_bias(name, two[name])
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), name
    l1, l2 = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert [s for s, _ in l1] == [s for s, _ in l2]
    assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(l1, l2))
    v1 = [r["ppl_per_example"] for r in read_metrics(tmp_path / "one") if r["kind"] == "valid"]
    v2 = [r["ppl_per_example"] for r in read_metrics(tmp_path / "two") if r["kind"] == "valid"]
    assert v1 == pytest.approx(v2, rel=1e-5)
    assert not any(t.startswith("..") for t in os.listdir(tmp_path / "two"))
    shutil.rmtree(tmp_path / "two")


def test_glove_vectors_set_the_table_width_and_force_replaces_a_run(graph_file, tmp_path) -> None:
    from kemp_kg import schema

    # the file's own vocabulary (`from conftest import VOCAB` finds tests/kg/conftest.py when
    # tests/kg runs in the same session, as in `just test`)
    vocab = schema.open_graphs(graph_file).vocab
    wide = tmp_path / "glove.20d.txt"  # wider than tiny's 16-wide table: the table takes them
    wide.write_text(
        "".join(f"{w} {i} " + " ".join(["1"] * 19) + "\n" for i, w in enumerate(vocab[8:20]))
    )
    base = job(graph_file, tmp_path / "run", 1, eval_every=1)
    train(dataclasses.replace(base, embeddings=wide))
    model, config, _ = ckpt.load_run(tmp_path / "run")
    assert config.model.embedding_dim == 20 and config.embeddings["coverage"] > 0
    assert model.embedding.weight.shape[1] == 20 and config.embeddings["placement"] is None
    narrow = tmp_path / "glove.5d.txt"  # narrower: placed in the preset's 16-wide table
    narrow.write_text("".join(f"{w} {i} 1 2 3 4\n" for i, w in enumerate(vocab[8:20])))
    train(dataclasses.replace(base, embeddings=narrow, embedding_placement="prefix", force=True))
    model, config, _ = ckpt.load_run(tmp_path / "run")
    assert config.model.embedding_dim == 16 and config.embeddings["placement"] == "prefix"
    train(dataclasses.replace(base, force=True))
    _, config, _ = ckpt.load_run(tmp_path / "run")
    assert config.model.embedding_dim == 16 and config.embeddings is None


def test_narrow_vectors_go_into_a_wider_table_keeping_their_geometry(graph_file, tmp_path) -> None:
    from kemp_kg import schema
    from kemp_model.embeddings import load_vectors

    vocab = schema.open_graphs(graph_file).vocab
    vectors = tmp_path / "glove.5d.txt"
    vectors.write_text("".join(f"{w} {i} 1 {-i} 3 {i % 3}\n" for i, w in enumerate(vocab[8:20])))
    narrow = load_vectors(vectors, vocab)
    wide = narrow.placed(24)
    assert wide.table.shape == (len(vocab), 24)
    rows = narrow.present
    # an orthonormal map keeps every dot product (so norms and nearest neighbours)
    torch.testing.assert_close(
        wide.table[rows] @ wide.table[rows].T,
        narrow.table[rows] @ narrow.table[rows].T,
        rtol=1e-4,
        atol=1e-3,
    )
    prefix = narrow.placed(24, "prefix")
    torch.testing.assert_close(prefix.table[:, :5], narrow.table)
    assert not prefix.table[:, 5:].any()
    with pytest.raises(ValueError, match="cannot place"):
        narrow.placed(4)
    base = job(graph_file, tmp_path / "run", 1, eval_every=1)
    train(dataclasses.replace(base, embeddings=vectors, model_overrides=(("embedding_dim", 24),)))
    model, config, _ = ckpt.load_run(tmp_path / "run")
    assert config.model.embedding_dim == 24 and model.embedding.weight.shape[1] == 24
    assert config.embeddings["dim"] == 5 and config.embeddings["table_dim"] == 24


def test_early_stopping_stops_and_a_resume_stays_stopped(graph_file, tmp_path) -> None:
    first = train(job(graph_file, tmp_path / "run", 300, eval_every=2, patience=1, log_every=2))
    assert first.stopped_early and first.steps < 300
    again = train(TrainJob(graphs=(graph_file,), out=tmp_path / "run", resume=True, progress=False))
    assert again.stopped_early and again.steps == first.steps


def test_run_records_its_graph_files_and_evaluate_uses_them(
    graph_file, tmp_path, monkeypatch
) -> None:
    import json

    from kemp_model.errors import KempModelError
    from kemp_model.evaluate import EvalConfig, evaluate_run

    run = tmp_path / "run"
    monkeypatch.chdir(graph_file.parent)
    train(job(Path(graph_file.name), run, 2))  # a relative --graphs path is stored absolute
    recorded = json.loads((run / "config.json").read_text())["graphs"]
    assert len(recorded) == 1 and Path(recorded[0]).is_absolute()
    assert Path(recorded[0]).samefile(graph_file)
    monkeypatch.chdir(tmp_path)
    assert evaluate_run(EvalConfig(run_dir=run, limit=2, device="cpu")).metrics["examples"] == 2
    # a resume from a copy at another path keeps the recorded file
    copy = tmp_path / "copy.arrow"
    shutil.copy(graph_file, copy)
    train(
        TrainJob(
            graphs=(copy,),
            out=run,
            resume=True,
            train_overrides=(("max_steps", 3),),
            progress=False,
        )
    )
    assert json.loads((run / "config.json").read_text())["graphs"] == recorded
    # a run from before graphs were recorded: evaluate asks for --graphs, a resume records them
    config = json.loads((run / "config.json").read_text())
    del config["graphs"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(KempModelError, match="records no graph file"):
        evaluate_run(EvalConfig(run_dir=run, limit=2, device="cpu"))
    train(
        TrainJob(
            graphs=(copy,),
            out=run,
            resume=True,
            train_overrides=(("max_steps", 4),),
            progress=False,
        )
    )
    assert json.loads((run / "config.json").read_text())["graphs"] == [str(copy)]


def test_a_model_without_emotion_head_logs_no_emotion_figures(graph_file, tmp_path) -> None:
    """The baseline's untrained emotion logits must not show up as an "accuracy" in its logs."""
    baseline = dataclasses.replace(
        job(graph_file, tmp_path / "run", 16),
        model_overrides=(
            ("use_knowledge", False),
            ("emotion_classifier", False),
            ("emotion_decoder", False),
            ("attention_loss", False),
        ),
        loss_overrides=(("emotion_weight", 0.0), ("attention_weight", 0.0)),
    )
    summary = train(baseline)
    records = read_metrics(tmp_path / "run")
    assert {r["kind"] for r in records} == {"train", "valid"}
    for record in records:
        assert not {"emotion_accuracy", "emotion_nll", "attention_loss"} & record.keys(), record
    assert "ppl_per_example" in summary.last_valid and (tmp_path / "run" / "curves.png").is_file()


@pytest.mark.parametrize(
    ("field", "changed", "same"),
    [
        (
            "dropout",
            {"model_overrides": (("dropout", 0.3),)},
            {"model_overrides": (("dropout", 0.1),)},
        ),
        (
            "reduction",
            {"loss_overrides": (("reduction", "sum"),)},
            {"loss_overrides": (("reduction", "official"),)},
        ),
        (
            "label_smoothing",
            {"loss_overrides": (("label_smoothing", 0.2),)},
            {"loss_overrides": (("label_smoothing", 0.0),)},
        ),
        ("batch_size", {"train_overrides": (("batch_size", 4),)}, {}),
    ],
)
def test_resume_refuses_a_changed_model_loss_or_training_setting(
    graph_file, tmp_path, field, changed, same
) -> None:
    from kemp_model.errors import CheckpointError

    train(job(graph_file, tmp_path / "run", 2))
    before = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(CheckpointError, match=f"--resume cannot change {field}"):
        train(
            TrainJob(
                graphs=(graph_file,), out=tmp_path / "run", resume=True, progress=False, **changed
            )
        )
    assert (tmp_path / "run" / "config.json").read_text() == before
    # the stored value given again is no change; a new --max-steps is recorded
    train(
        TrainJob(
            graphs=(graph_file,),
            out=tmp_path / "run",
            resume=True,
            progress=False,
            train_overrides=(("max_steps", 3),),
            **same,
        )
    )
    assert ckpt.read_run_config(tmp_path / "run")[0].train.max_steps == 3


def test_parameters_are_announced_at_start(graph_file, tmp_path, capsys) -> None:
    train(job(graph_file, tmp_path / "run", 1))
    err = capsys.readouterr().err
    model, _, _ = ckpt.load_run(tmp_path / "run")
    total = sum(p.numel() for p in model.parameters())
    assert f"preset tiny, {total:,} parameters" in err
