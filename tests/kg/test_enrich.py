"""Enrichment: a hand-built dialogue + index -> exactly the expected graph; real-data checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from kemp_kg import schema
from kemp_kg.enrich import enrich, parse_shard, shard_of
from kemp_kg.errors import IndexNotFoundError, InputError
from kemp_kg.index import build_index
from kemp_kg.presets import official, paper

# Lexicon chosen so that Eq. 1 gives round numbers: raw = ||(V - .5, A / 2)||, min-max over the
# lexicon with raw_min 0 (calm) and raw_max 0.5 (happy, sad): eta = raw / 0.5.
LEXICON = """Word\tValence\tArousal\tDominance
calm\t0.5\t0.0\t0.5
happy\t1.0\t0.0\t0.5
sad\t0.0\t0.0\t0.5
joy\t0.9\t0.0\t0.5
smile\t0.7\t0.0\t0.5
dog\t0.6\t0.0\t0.5
loyal\t0.8\t0.0\t0.5
cute\t0.9\t0.0\t0.5
gift\t0.7\t0.0\t0.5
puppy\t0.8\t0.0\t0.5
surprise\t0.5\t0.6\t0.5
"""
ETA = {
    "calm": 0.0,
    "happy": 1.0,
    "sad": 1.0,
    "joy": 0.8,
    "smile": 0.4,
    "dog": 0.2,
    "loyal": 0.6,
    "cute": 0.8,
    "gift": 0.4,
    "puppy": 0.6,
    "surprise": 0.6,
}
KNOWLEDGE = """head\trelation\ttail\tweight
happy\tRelatedTo\tjoy\t2.0
happy\tRelatedTo\tsmile\t1.0
happy\tAntonym\tsad\t2.0
puppy\tIsA\tdog\t1.0
cute\tRelatedTo\tpuppy\t1.0
dog\tHasProperty\tloyal\t1.5
gift\tRelatedTo\tsurprise\t1.0
gift\tRelatedTo\tjoy\t0.05
"""
DIALOGUE = {
    "id": "d1",
    "split": "train",
    "emotion": "joyful",
    "turns": [
        {"role": "speaker", "text": "I got a puppy as a gift."},
        {"role": "listener", "text": "A dog! You must be happy."},
        {"role": "speaker", "text": "So happy, he is cute."},
        {"role": "listener", "text": "What a joy, a loyal dog and a big smile."},
    ],
}
T0 = ["i", "got", "a", "puppy", "as", "a", "gift", "."]
T1 = ["a", "dog", "!", "you", "must", "be", "happy", "."]
T2 = ["so", "happy", ",", "he", "is", "cute", "."]
T3 = ["what", "a", "joy", ",", "a", "loyal", "dog", "and", "a", "big", "smile", "."]
R = schema.RELATION_INDEX


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hand")
    (folder / "knowledge.tsv").write_text(KNOWLEDGE)
    (folder / "lexicon.tsv").write_text(LEXICON)
    build_index(folder / "knowledge.tsv", folder / "lexicon.tsv", folder / "index")
    return folder / "index"


@pytest.fixture()
def dialogue_file(tmp_path: Path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text('{"format": "kemp-dialogues/1"}\n' + json.dumps(DIALOGUE) + "\n")
    return path


def words(vocab: tuple[str, ...], ids: list[int]) -> list[str]:
    return [vocab[i] for i in ids]


def test_hand_built_dialogue_gives_exactly_the_expected_graph(
    nltk_data: Path, small_index: Path, dialogue_file: Path, tmp_path: Path
) -> None:
    result = enrich(dialogue_file, small_index, tmp_path / "g.arrow", config=paper(), workers=1)
    graphs = schema.open_graphs(result.path)
    vocab = graphs.vocab
    rows = graphs.table.to_pylist()
    assert [r["example_id"] for r in rows] == ["d1:1", "d1:3"]
    # vocabulary: specials, then training tokens by count desc, ties by string
    assert vocab[:8] == schema.SPECIAL_TOKENS
    assert vocab[8:13] == ("a", ".", ",", "dog", "happy")  # a x6, . x4, then x2 by string

    first, second = rows
    assert first["split"] == "train" and first["emotion"] == schema.EMOTION_INDEX["joyful"]
    assert first["history"] == [DIALOGUE["turns"][0]["text"]]
    assert first["target"] == DIALOGUE["turns"][1]["text"]
    assert words(vocab, first["context_ids"]) == ["<cls>", *T0]
    assert first["context_roles"] == [0] + [1] * 8
    assert first["context_intensity"] == pytest.approx(
        [0.0] + [ETA.get(t, 0.0) for t in T0], abs=1e-6
    )
    # puppy (position 4): cute via the reversed "cute RelatedTo puppy" (0.8), dog via IsA (0.2);
    # gift (7): surprise is no training token, joy's edge 0.05 is under alpha; got (2): nothing.
    assert words(vocab, first["concept_ids"]) == ["cute", "dog"]
    assert first["concept_anchor"] == [4, 4]
    assert first["concept_relation"] == [R["RelatedTo"], R["IsA"]]
    assert first["concept_weight"] == [1.0, 1.0]
    assert first["concept_intensity"] == pytest.approx([0.8, 0.2], abs=1e-6)
    assert words(vocab, first["target_ids"]) == T1

    assert first["context_ids"] == second["context_ids"][:9]
    assert words(vocab, second["context_ids"]) == ["<cls>", *T0, *T1, *T2]
    assert second["context_roles"] == [0] + [1] * 8 + [2] * 8 + [1] * 7
    # candidates: puppy@4 {cute .8, dog .2}, dog@10 {loyal .6 w1.5, puppy .6 w1.0},
    # happy@15 and happy@18 {joy .8 w2, smile .4} (sad: Antonym dropped), cute@22 {puppy .6}.
    # Kept once each, ordered by intensity, weight, concept, position:
    assert words(vocab, second["concept_ids"]) == ["joy", "cute", "loyal", "puppy", "smile", "dog"]
    assert second["concept_anchor"] == [15, 4, 10, 10, 15, 4]
    assert second["concept_relation"] == [
        R["RelatedTo"],
        R["RelatedTo"],
        R["HasProperty"],
        R["IsA"],
        R["RelatedTo"],
        R["IsA"],
    ]
    assert second["concept_weight"] == [2.0, 1.0, 1.5, 1.0, 1.0, 1.0]
    assert second["concept_intensity"] == pytest.approx([0.8, 0.8, 0.6, 0.6, 0.4, 0.2], abs=1e-6)
    assert words(vocab, second["target_ids"]) == T3

    edges = schema.edge_lists(len(second["context_ids"]), second["concept_anchor"])
    assert edges["temporary"] == [(i, i + 1) for i in range(1, 23)]
    assert edges["emotion"] == [(15, 24), (4, 25), (10, 26), (10, 27), (15, 28), (4, 29)]
    assert edges["globality"] == [(0, v) for v in range(1, 30)]

    prov = graphs.provenance
    assert prov["preset"] == "paper" and prov["thresholds"]["top_k_per_token"] == 5
    assert prov["index"]["source"]["xxh3_128"] and prov["index"]["lexicon"]["sha256"]
    assert prov["inputs"][0]["sha256"] and prov["examples"] == {"train": 2}


def test_caps_k_per_word_and_n_per_example(
    nltk_data: Path, small_index: Path, dialogue_file: Path, tmp_path: Path
) -> None:
    capped = paper().replace(top_k_per_token=1, max_concepts_per_dialogue=3)
    graphs = schema.open_graphs(
        enrich(dialogue_file, small_index, tmp_path / "k.arrow", config=capped, workers=1).path
    )
    second = graphs.table.to_pylist()[1]
    # top 1 per word: puppy->cute, dog->loyal, happy->joy, cute->puppy; then the best 3
    assert words(graphs.vocab, second["concept_ids"]) == ["joy", "cute", "loyal"]
    assert second["concept_anchor"] == [15, 4, 10]


def test_official_preset_keeps_its_thresholds(
    nltk_data: Path, small_index: Path, dialogue_file: Path, tmp_path: Path
) -> None:
    graphs = schema.open_graphs(
        enrich(dialogue_file, small_index, tmp_path / "o.arrow", config=official(), workers=1).path
    )
    second = graphs.table.to_pylist()[1]
    # weight >= 1, eta >= 0.6, 1 per word; IsA allowed, dog's loyal (0.6, 1.5) beats puppy
    assert words(graphs.vocab, second["concept_ids"]) == ["joy", "cute", "loyal", "puppy"]
    assert graphs.provenance["thresholds"]["min_concept_intensity"] == 0.6


def test_shards_are_disjoint_and_together_equal_the_whole(
    nltk_data: Path, small_index: Path, tmp_path: Path
) -> None:
    records = [
        {
            "id": f"c{i}",
            "split": ["train", "valid", "test"][i % 3],
            "emotion": "proud",
            "turns": [
                {"role": "speaker", "text": f"My dog {i} is so cute and happy."},
                {"role": "listener", "text": "What a loyal puppy!"},
                {"role": "speaker", "text": "He brings me joy."},
                {"role": "listener", "text": f"A gift number {i}."},
            ],
        }
        for i in range(12)
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    whole = schema.open_graphs(
        enrich(path, small_index, tmp_path / "all.arrow", config=paper(), workers=1).path
    )
    for i in range(3):
        enrich(
            path,
            small_index,
            tmp_path / "shards" / f"part-{i}.arrow",
            config=paper(),
            shard=(i, 3),
            workers=1,
        )
    shards = schema.open_graphs(tmp_path / "shards")
    assert shards.vocab == whole.vocab
    parts = [schema.open_graphs(p).table["conv_id"].to_pylist() for p in shards.paths]
    assert sum(len(set(p)) for p in parts) == len(set().union(*map(set, parts))) == 12
    assert all(parts)  # 12 conversations over 3 shards: none empty for these ids
    by_id = {r["example_id"]: r for r in shards.table.to_pylist()}
    assert [by_id[r["example_id"]] for r in whole.table.to_pylist()] == whole.table.to_pylist()
    assert shards.provenance["shard"] == "0/3"


def test_shard_helpers() -> None:
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1/0", "-1/3"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_of("hit:0_conv:1", 7) == shard_of("hit:0_conv:1", 7)  # stable, not hash()


def test_no_train_split_needs_a_vocab_file(
    nltk_data: Path, small_index: Path, dialogue_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="--vocab"):
        enrich(dialogue_file, small_index, tmp_path / "x.arrow", config=paper(), split="test")
    vocab_from = enrich(dialogue_file, small_index, tmp_path / "a.arrow", config=paper()).path
    result = enrich(
        dialogue_file,
        small_index,
        tmp_path / "t.arrow",
        config=paper(),
        split="test",
        vocab_file=vocab_from,
    )
    graphs = schema.open_graphs(result.path)
    assert set(graphs.table["split"].to_pylist()) == {"test"}
    assert graphs.vocab == schema.open_graphs(vocab_from).vocab


def test_missing_index_fails_before_reading(tmp_path: Path, dialogue_file: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="build-index"):
        enrich(dialogue_file, tmp_path / "nope", tmp_path / "x.arrow", config=paper())
    assert not (tmp_path / "x.arrow").exists()


# ------------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def wordnet_index(tmp_path_factory: pytest.TempPathFactory, nltk_data: Path, nrc_vad: Path) -> Path:
    folder = tmp_path_factory.mktemp("wn") / "index"
    build_index("wordnet", nrc_vad, folder)
    return folder


@pytest.fixture(scope="module")
def valid_graphs(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, wordnet_index: Path
) -> schema.GraphFile:
    """The real valid split, with the vocabulary of the real train split (vocab from valid as
    'train' would be smaller but equally valid; this keeps the CI run to the valid split)."""
    out = tmp_path_factory.mktemp("wn_out")
    result = enrich(
        shared_data / "ed" / "valid.csv",
        wordnet_index,
        out / "valid.arrow",
        config=paper(),
        split="train",
    )
    return schema.open_graphs(result.path)


def test_real_valid_split_graph_invariants(
    valid_graphs: schema.GraphFile, wordnet_index: Path
) -> None:
    import duckdb

    table = valid_graphs.table
    assert table.num_rows == 5_736
    config = paper()
    anchors = table["concept_anchor"].to_pylist()
    concept_ids = table["concept_ids"].to_pylist()
    context = table["context_ids"].to_pylist()
    roles = table["context_roles"].to_pylist()
    assert all(len(c) <= config.max_concepts_per_dialogue for c in concept_ids)
    assert sum(map(len, concept_ids)) > table.num_rows  # most examples get concepts
    for ctx, role, anc in zip(context, roles, anchors):
        assert ctx[0] == schema.CLS_ID and role[0] == schema.Role.CLS
        assert all(r in (1, 2) for r in role[1:])
        assert all(1 <= a < len(ctx) for a in anc)
        per_word = np.bincount(np.asarray(anc, dtype=np.int64)) if anc else np.zeros(1)
        assert per_word.max(initial=0) <= config.top_k_per_token
        edges = schema.edge_lists(len(ctx), anc)
        assert edges["globality"] == [(0, v) for v in range(1, len(ctx) + len(anc))]
        assert edges["temporary"] == [(i, i + 1) for i in range(1, len(ctx) - 1)]
    # every concept is a neighbour of its anchor word (surface or lemma) through an allowed
    # relation above alpha, with the index's intensity
    vocab = valid_graphs.vocab
    from kemp_kg.text import lemma

    pos_letters = "nvar"
    rows: dict[str, list] = {
        "n": [],
        "key": [],
        "concept": [],
        "relation": [],
        "weight": [],
        "intensity": [],
    }
    for ctx, anc, cids, rel, wt, inten in zip(
        context,
        anchors,
        concept_ids,
        table["concept_relation"].to_pylist(),
        table["concept_weight"].to_pylist(),
        table["concept_intensity"].to_pylist(),
    ):
        for a, c, r, w, i in zip(anc, cids, rel, wt, inten):
            assert schema.RELATIONS[r] not in config.excluded_relations
            assert w > config.min_confidence and 0.0 <= i <= 1.0
            word = vocab[ctx[a]]
            for key in {word} | {lemma(word, p) for p in pos_letters}:
                rows["n"].append(len(rows["concept"]))
                rows["key"].append(key)
            rows["concept"].append(vocab[c])
            rows["relation"].append(schema.RELATIONS[r])
            rows["weight"].append(w)
            rows["intensity"].append(i)
    assert rows["concept"]
    keys = pa.table({"n": rows["n"], "key": rows["key"]})
    found_rows = pa.table({k: rows[k] for k in ("concept", "relation", "weight", "intensity")})
    found_rows = found_rows.append_column("n", pa.array(range(found_rows.num_rows)))
    con = duckdb.connect(str(wordnet_index / "index.duckdb"), read_only=True)
    try:
        con.register("keys", keys)
        con.register("found", found_rows)
        # per concept vertex: the best matching index edge from any key of its anchor word
        matched = con.sql(
            "SELECT f.n, max(nb.weight) AS weight, any_value(nb.concept_intensity) AS intensity "
            "FROM found f JOIN keys k ON k.n = f.n JOIN neighbours nb ON nb.word = k.key "
            "AND nb.concept = f.concept AND nb.relation = f.relation GROUP BY f.n ORDER BY f.n"
        ).fetchall()
        # token intensities equal the index's lexicon
        sample = [
            (vocab[t], x)
            for ctx, xs in zip(context[:300], table["context_intensity"].to_pylist()[:300])
            for t, x in zip(ctx[1:], xs[1:])
            if t != schema.UNK_ID
        ]
        lexicon = dict(con.execute("SELECT word, intensity FROM lexicon").fetchall())
    finally:
        con.close()
    assert [m[0] for m in matched] == list(range(found_rows.num_rows))  # every one found
    for (_, weight, intensity), w, i in zip(matched, rows["weight"], rows["intensity"]):
        assert math.isclose(weight, w, rel_tol=1e-6)
        assert math.isclose(intensity, i, rel_tol=1e-6, abs_tol=1e-7)
    for token, value in sample:
        assert value == pytest.approx(lexicon.get(token, 0.0), abs=1e-6)


def test_real_file_reads_with_plain_pyarrow_and_polars(valid_graphs: schema.GraphFile) -> None:
    path = valid_graphs.paths[0]
    with pa.memory_map(str(path)) as source:
        assert ipc.open_file(source).read_all().num_rows == 5_736
    frame = pl.read_ipc(path)
    assert frame.height == 5_736 and frame["split"].unique().to_list() == ["train"]
    assert frame.schema["context_ids"] == pl.List(pl.Int32)


@pytest.mark.slow
def test_real_all_splits_counts(tmp_path: Path, shared_data: Path, wordnet_index: Path) -> None:
    result = enrich(shared_data / "ed", wordnet_index, tmp_path / "ed.arrow", config=paper())
    assert result.examples == {"train": 40_252, "valid": 5_736, "test": 5_257}
