"""What the real WordNet index (``sense`` rules) injects into real EmpatheticDialogues contexts
with the ``sense`` preset: none of the rated clearly-wrong pairs (``fixtures/wrong_pairs.tsv``),
no light-word anchors, a directed index with POS, the lemma's intensity for inflected tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemp_kg import schema
from kemp_kg.enrich import enrich
from kemp_kg.index import build_index, open_index
from kemp_kg.presets import LIGHT_WORDS, sense
from kemp_kg.text import base_form

FIXTURE = Path(__file__).parent / "fixtures" / "wrong_pairs.tsv"


def wrong_pairs() -> list[tuple[str, str]]:
    rows = [
        line.split("\t")
        for line in FIXTURE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [(row[0], row[1]) for row in rows]


@pytest.fixture(scope="module")
def sense_index(tmp_path_factory: pytest.TempPathFactory, nltk_data: Path, nrc_vad: Path) -> Path:
    folder = tmp_path_factory.mktemp("wn_sense") / "index"
    build_index("wordnet", nrc_vad, folder)
    return folder


@pytest.fixture(scope="module")
def test_split_graphs(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, sense_index: Path
) -> schema.GraphFile:
    """The ED test split (its own vocabulary, as 'train'), sense preset."""
    out = tmp_path_factory.mktemp("wn_sense_out") / "test.arrow"
    result = enrich(
        shared_data / "ed" / "test.csv", sense_index, out, config=sense(), split="train"
    )
    return schema.open_graphs(result.path)


def _injected(graphs: schema.GraphFile):
    vocab = graphs.vocab
    for ctx, anchors, concepts in zip(
        graphs.table["context_ids"].to_pylist(),
        graphs.table["concept_anchor"].to_pylist(),
        graphs.table["concept_ids"].to_pylist(),
        strict=True,
    ):
        for a, c in zip(anchors, concepts, strict=True):
            yield vocab[ctx[a]], vocab[c]


def test_rated_wrong_pairs_are_no_longer_injected(test_split_graphs: schema.GraphFile) -> None:
    pairs = wrong_pairs()
    assert len(pairs) >= 10
    vocab = test_split_graphs.vocab
    # every rated word occurs in these contexts (so the check below is not vacuous)
    tokens = {vocab[t] for ctx in test_split_graphs.table["context_ids"].to_pylist() for t in ctx}
    bases = {t: {t} | {base_form(t, p) for p in "nvar"} for t in tokens if t.isalpha()}
    present = {b for forms in bases.values() for b in forms}
    assert not [w for w, _ in pairs if w not in present]
    wrong = set(pairs)
    injected = [
        (w, c)
        for w, c in _injected(test_split_graphs)
        if any((b, c) in wrong for b in bases.get(w, {w}))
    ]
    assert injected == []
    assert sum(1 for _ in _injected(test_split_graphs)) > 5 * test_split_graphs.table.num_rows


def test_light_words_fetch_nothing_and_ranking_is_weight_x_intensity(
    test_split_graphs: schema.GraphFile,
) -> None:
    table = test_split_graphs.table
    anchors = {w for w, _ in _injected(test_split_graphs)}
    # a few light verbs and their forms that filled a quarter of the slots before
    assert not anchors & {
        "get",
        "got",
        "went",
        "go",
        "going",
        "feel",
        "felt",
        "made",
        "took",
        "said",
        "last",
        "back",
    }
    # (a light word's surface form may still anchor as another word: "bit" tagged VBD is "bite")
    assert {"get", "go", "feel", "make", "take", "say"} <= set(LIGHT_WORDS)
    for weights, intensities in zip(
        table["concept_weight"].to_pylist(), table["concept_intensity"].to_pylist(), strict=True
    ):
        scores = [w * i for w, i in zip(weights, intensities, strict=True)]
        assert all(a >= b - 1e-6 for a, b in zip(scores, scores[1:], strict=False))
        assert all(0.1 < w <= 1.0 for w in weights)


def test_index_is_directed_with_pos_and_inflections_get_their_lemma_intensity(
    test_split_graphs: schema.GraphFile, sense_index: Path
) -> None:
    knowledge = open_index(sense_index)
    assert knowledge.manifest["directed"] is True
    assert knowledge.manifest["options"]["wordnet"]["preset"] == "sense"
    # IsA read upwards only: a general word does not reach its hyponyms
    assert "dog" not in {n.concept for n in knowledge.neighbours("canine", top=200)}
    assert "canine" in {n.concept for n in knowledge.neighbours("dog", top=200)}
    con = knowledge.connect()
    try:
        pos = {
            p
            for (p,) in con.execute(
                "SELECT DISTINCT word_pos FROM neighbours WHERE word = 'beach'"
            ).fetchall()
        }
    finally:
        con.close()
    assert pos == {"n", "v"}
    # context intensity: 'got' (not in NRC-VAD) gets 'get''s, and the file says how
    provenance = test_split_graphs.provenance["context_intensity"]
    assert provenance["lookup"].startswith("surface form, else")
    assert provenance["words_by_base_form"] > 100
    assert knowledge.intensity("got") == 0.0 < knowledge.intensity("get")
    vocab = test_split_graphs.vocab
    got = vocab.index("got")
    table = test_split_graphs.table
    rows = zip(
        table["context_ids"].to_pylist()[:500],
        table["context_intensity"].to_pylist()[:500],
        strict=True,
    )
    seen = [x for ctx, xs in rows for t, x in zip(ctx, xs, strict=True) if t == got]
    assert seen and all(x == pytest.approx(knowledge.intensity("get")) for x in seen)
