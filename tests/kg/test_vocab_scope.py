"""enrich --vocab-scope: the training vocabulary (default) or the released code's (all splits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kemp_kg import schema
from kemp_kg.enrich import enrich
from kemp_kg.index import build_index
from kemp_kg.presets import paper

LEXICON = "Word\tValence\tArousal\tDominance\nhappy\t1.0\t0.0\t0.5\ncalm\t0.5\t0.0\t0.5\n"
KNOWLEDGE = "head\trelation\ttail\tweight\nhappy\tRelatedTo\tjoy\t2.0\n"


def conversation(conv_id: str, split: str, situation: str, *texts: str) -> dict:
    roles = ["speaker", "listener"] * len(texts)
    return {
        "id": conv_id,
        "split": split,
        "emotion": "joyful",
        "situation": situation,
        "turns": [{"role": r, "text": t} for r, t in zip(roles, texts, strict=False)],
    }


DIALOGUES = [
    conversation("a", "train", "A sunny trip.", "I am happy today.", "That is great news."),
    conversation("b", "train", "", "I am happy again.", "Great to hear."),
    conversation("c", "valid", "The valley walk.", "Zebras ran past.", "Wow, zebras!"),
    conversation("d", "test", "Quiet harbour.", "Kayaks everywhere.", "Kayaks are fun."),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("scope")
    (folder / "knowledge.tsv").write_text(KNOWLEDGE)
    (folder / "lexicon.tsv").write_text(LEXICON)
    build_index(folder / "knowledge.tsv", folder / "lexicon.tsv", folder / "index")
    dialogues = folder / "d.jsonl"
    dialogues.write_text(
        '{"format": "kemp-dialogues/1"}\n' + "".join(json.dumps(d) + "\n" for d in DIALOGUES)
    )
    return folder / "index", dialogues


def test_default_vocabulary_is_the_training_turns_only(
    nltk_data: Path, setup: tuple[Path, Path], tmp_path: Path
) -> None:
    index, dialogues = setup
    result = enrich(dialogues, index, tmp_path / "g.arrow", config=paper())
    graphs = schema.open_graphs(result.path)
    vocab = set(graphs.vocab)
    assert {"happy", "great", "news"} <= vocab
    assert not vocab & {"zebras", "kayaks", "sunny", "valley", "harbour"}
    assert graphs.provenance["vocab"]["split"] == "train"


def test_official_scope_counts_every_split_and_the_situations(
    nltk_data: Path, setup: tuple[Path, Path], tmp_path: Path
) -> None:
    index, dialogues = setup
    result = enrich(dialogues, index, tmp_path / "o.arrow", config=paper(), vocab_scope="official")
    graphs = schema.open_graphs(result.path)
    vocab = graphs.vocab
    # valid/test turns, situations of every split, each once (no minimum count)
    assert {"zebras", "kayaks", "wow", "fun", "sunny", "valley", "harbour", "quiet"} <= set(vocab)
    assert len(vocab) == len(set(vocab))
    # most frequent first after the specials: "happy" (2 train turns) before "zebras" (valid)...
    assert vocab.index("happy") < vocab.index("sunny")
    # ...and "kayaks" (2 test turns) before the situation-only "harbour"
    assert vocab.index("kayaks") < vocab.index("harbour")
    prov = graphs.provenance["vocab"]
    assert prov["scope"] == "official" and prov["splits"] == ["test", "train", "valid"]
    assert prov["texts"] == "turns and situations" and prov["min_count"] == 1
    assert prov["size"] == len(vocab)
    # the test-only word is a real id in the test split's context, not <unk>
    rows = graphs.table.filter(schema_split_is(graphs, "test")).to_pylist()
    kayaks = vocab.index("kayaks")
    assert any(kayaks in row["context_ids"] for row in rows)
    # examples are the same rows whatever the vocabulary
    default = schema.open_graphs(
        enrich(dialogues, index, tmp_path / "d.arrow", config=paper()).path
    )
    assert default.table["example_id"].to_pylist() == graphs.table["example_id"].to_pylist()


def schema_split_is(graphs: schema.GraphFile, split: str):
    import pyarrow.compute as pc

    return pc.equal(graphs.table["split"], split)


def test_scope_is_checked_and_excludes_a_vocabulary_file(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    index, dialogues = setup
    with pytest.raises(ValueError, match="vocab_scope must be one of"):
        enrich(dialogues, index, tmp_path / "x.arrow", config=paper(), vocab_scope="all")
    with pytest.raises(ValueError, match="exclude each other"):
        enrich(
            dialogues,
            index,
            tmp_path / "x.arrow",
            config=paper(),
            vocab_scope="official",
            vocab_file=tmp_path / "v.json",
        )
    assert not (tmp_path / "x.arrow").exists()


def kemp_kg(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kemp-kg")
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NLTK_DATA": os.environ["NLTK_DATA"]}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=180, env=env)


def test_cli_flag(nltk_data: Path, setup: tuple[Path, Path], tmp_path: Path) -> None:
    index, dialogues = setup
    out = tmp_path / "cli.arrow"
    run = kemp_kg(
        "enrich",
        str(dialogues),
        "--index",
        str(index),
        "--out",
        str(out),
        "--vocab-scope",
        "official",
        "--workers",
        "1",
    )
    assert run.returncode == 0, run.stderr
    assert schema.open_graphs(out).provenance["vocab"]["scope"] == "official"
    bad = kemp_kg(
        "enrich",
        str(dialogues),
        "--index",
        str(index),
        "--out",
        str(tmp_path / "bad.arrow"),
        "--vocab-scope",
        "everything",
    )
    assert bad.returncode != 0 and "--vocab-scope must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "bad.arrow").exists()
