"""evaluate / generate / score on a run folder holding an untrained tiny KEMP (no training)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import kemp_model.cli  # noqa: F401  (registers the commands)
from kemp_kg import schema
from kemp_model.checkpoint import RunConfig, save_weights, vocab_checksum, write_run_config
from kemp_model.cli.app import app
from kemp_model.config import tiny
from kemp_model.data import load_split
from kemp_model.decoding import DecodeConfig, generate
from kemp_model.errors import KempModelError
from kemp_model.evaluate import (
    EvalConfig,
    GenerateConfig,
    evaluate_run,
    generate_run,
    ids_to_text,
    predict,
)
from kemp_model.model import KEMP
from kemp_model.score import read_predictions, score_predictions


@pytest.fixture(scope="module")
def run_dir(graph_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny KEMP saved as a run folder that records its graph file."""
    graphs = schema.open_graphs(graph_file)
    preset = tiny()
    torch.manual_seed(0)
    model = KEMP(preset.model, len(graphs.vocab))
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    folder.mkdir()
    config = RunConfig(
        preset=preset.name,
        model=preset.model,
        train=preset.train,
        vocab_size=len(graphs.vocab),
        vocab_sha256=vocab_checksum(graphs.vocab),
        provenance=dict(graphs.provenance),
        graphs=(str(graph_file),),
    )
    write_run_config(folder, config, graphs.vocab)
    save_weights(folder / "best.safetensors", model, {"vocab_sha256": config.vocab_sha256})
    return folder


def test_ids_to_text() -> None:
    vocab = (*schema.SPECIAL_TOKENS, "hello", "world")
    assert ids_to_text([schema.SOS_ID, 8, schema.UNK_ID, 9, schema.EOS_ID, 8], vocab) == (
        "hello <unk> world"
    )


def test_evaluate_writes_metrics_and_official_predictions(run_dir: Path) -> None:
    result = evaluate_run(EvalConfig(run_dir=run_dir, split="test", batch_size=5, device="cpu"))
    m = result.metrics
    assert result.metrics_path == run_dir / "eval" / "test-greedy.metrics.json"
    assert json.loads(result.metrics_path.read_text()) == m
    assert m["examples"] == 16 and m["split"] == "test" and m["preset"] == "tiny"
    assert 0.0 <= m["emotion_accuracy"] <= 1.0
    for key in ("perplexity_per_example", "perplexity_pooled"):
        assert math.isfinite(m[key]) and m[key] > 1.0
    assert m["decode"]["strategy"] == "greedy" and m["decode"]["max_len"] == 30
    records = read_predictions(result.predictions_path)
    assert len(records) == 16
    rescored = score_predictions(result.predictions_path).as_dict()
    for key in ("distinct_1", "distinct_2", "bleu_1", "bleu_4", "top_response_share"):
        assert rescored[key] == pytest.approx(m[key]), key
    assert all(r.emotion in schema.EMOTIONS for r in records)
    assert any(r.concepts for r in records)
    assert not list((run_dir / "eval").glob("*.tmp"))


def test_perplexity_and_accuracy_do_not_depend_on_batching(run_dir: Path, graph_file: Path) -> None:
    one = evaluate_run(
        EvalConfig(run_dir=run_dir, batch_size=16, device="cpu", out_dir=run_dir / "a")
    )
    small = evaluate_run(
        EvalConfig(run_dir=run_dir, batch_size=3, device="cpu", out_dir=run_dir / "b")
    )
    for key in ("perplexity_per_example", "perplexity_pooled"):
        assert one.metrics[key] == pytest.approx(small.metrics[key], rel=1e-5)
    assert one.metrics["emotion_accuracy"] == small.metrics["emotion_accuracy"]
    # and they equal the two formulas computed in one forward pass over the whole split
    dataset, _, _ = load_split(graph_file, "test")
    model = KEMP(tiny().model, len(dataset.vocab))
    from kemp_model.checkpoint import load_weights

    load_weights(run_dir / "best.safetensors", model)
    model.eval()
    with torch.no_grad():
        out = model(dataset.collate(list(range(len(dataset)))))
    pooled = math.exp(float(out.generation_nll_sum) / float(out.token_count))
    assert one.metrics["perplexity_pooled"] == pytest.approx(pooled, rel=1e-5)
    per_example = math.exp(float(out.example_mean_nll_sum) / len(dataset))
    assert one.metrics["perplexity_per_example"] == pytest.approx(per_example, rel=1e-5)


def test_limit_decoding_and_file_names(run_dir: Path) -> None:
    config = EvalConfig(
        run_dir=run_dir,
        limit=4,
        device="cpu",
        decode=DecodeConfig(strategy="beam", beam_size=3),
        decode_name="beam",
    )
    result = evaluate_run(config)
    assert result.metrics["examples"] == 4
    assert result.predictions_path.name == "test-beam.predictions.txt"
    assert result.metrics["decode"]["beam_size"] == 3


def test_beam_of_one_equals_greedy_on_the_real_model(graph_file: Path) -> None:
    dataset, vocab, _ = load_split(graph_file, "test")
    torch.manual_seed(1)
    model = KEMP(tiny().model, len(vocab)).eval()
    batch = dataset.collate(list(range(8)))
    greedy = generate(model, batch, DecodeConfig(max_len=6))
    beam = generate(model, batch, DecodeConfig(strategy="beam", beam_size=1, max_len=6))
    assert greedy == beam
    wide = generate(model, batch, DecodeConfig(strategy="beam", beam_size=4, max_len=6))
    assert all(len(r) <= 6 for r in wide)


def test_predict_keeps_dataset_order(graph_file: Path) -> None:
    dataset, vocab, _ = load_split(graph_file, "test")
    model = KEMP(tiny().model, len(vocab))
    predictions, metrics = predict(model, dataset, DecodeConfig(max_len=3), rows=[5, 1, 3])
    assert [p.row for p in predictions] == [5, 1, 3]
    assert [p.example_id for p in predictions] == [dataset.text(r)["example_id"] for r in (5, 1, 3)]
    assert metrics.value()["examples"] == 3
    assert all(len(p.emotion_top) == 3 for p in predictions)
    assert model.training  # restored


def test_generate_writes_jsonl(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    predictions = generate_run(
        GenerateConfig(
            run_dir=run_dir,
            split="valid",
            limit=5,
            device="cpu",
            out=out,
            decode=DecodeConfig(strategy="topp", seed=3),
        )
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(predictions) == 5
    assert set(lines[0]) >= {"example_id", "history", "emotion_predicted", "concepts", "response"}
    again = generate_run(
        GenerateConfig(
            run_dir=run_dir,
            split="valid",
            limit=5,
            device="cpu",
            decode=DecodeConfig(strategy="topp", seed=3),
        )
    )
    assert [p.response for p in again] == [p.response for p in predictions]


def test_bad_inputs_are_one_line_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(KempModelError, match="not a run folder"):
        evaluate_run(EvalConfig(run_dir=tmp_path / "nope", device="cpu"))
    with pytest.raises(KempModelError, match="split 'nope' has no rows"):
        evaluate_run(EvalConfig(run_dir=run_dir, split="nope", device="cpu"))
    other = tmp_path / "other.arrow"
    graphs = schema.open_graphs(json.loads((run_dir / "config.json").read_text())["graphs"][0])
    vocab = [*graphs.vocab[:-1], graphs.vocab[-1] + "-other"]  # same ids, another vocabulary
    schema.write_graphs(other, [graphs.table], vocab=vocab, provenance={})
    with pytest.raises(KempModelError, match="vocabulary differs"):
        evaluate_run(EvalConfig(run_dir=run_dir, graphs=(other,), device="cpu"))


def test_cli_evaluate_and_score(run_dir: Path, tmp_path: Path) -> None:
    import torch

    runner = CliRunner()
    threads = torch.get_num_threads()
    try:
        result = runner.invoke(
            app,
            [
                "evaluate",
                str(run_dir),
                "--limit",
                "6",
                "--decode",
                "diverse",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--out-dir",
                str(tmp_path),
            ],
        )
        assert torch.get_num_threads() == 1  # --threads reached torch
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "Distinct-1" in result.output
    preds = tmp_path / "test-diverse.predictions.txt"
    metrics = json.loads((tmp_path / "test-diverse.metrics.json").read_text())
    assert metrics["decode"]["strategy"] == "topp" and metrics["examples"] == 6
    scored = runner.invoke(app, ["score", str(preds), "--json", str(tmp_path / "s.json")])
    assert scored.exit_code == 0, scored.output
    assert json.loads((tmp_path / "s.json").read_text())["examples"] == 6
    bad = runner.invoke(app, ["evaluate", str(run_dir), "--decode", "topp", "--top-p", "2"])
    assert bad.exit_code != 0 and "top_p" in bad.output
    bad = runner.invoke(app, ["evaluate", str(run_dir), "--threads", "0"])
    assert bad.exit_code == 2 and "--threads" in bad.output


def test_cli_score_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Emotion:sad \nnonsense\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from kemp_model.cli import main; main()", "score", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and f"{bad}:2:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_models_without_knowledge_show_no_concepts(graph_file: Path) -> None:
    import dataclasses

    dataset, vocab, _ = load_split(graph_file, "test")
    config = dataclasses.replace(tiny().model, use_knowledge=False)
    predictions, _ = predict(KEMP(config, len(vocab)), dataset, DecodeConfig(max_len=2))
    assert all(p.concepts == () for p in predictions)
    with_knowledge, _ = predict(KEMP(tiny().model, len(vocab)), dataset, DecodeConfig(max_len=2))
    assert any(p.concepts for p in with_knowledge)
