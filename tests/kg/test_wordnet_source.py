"""kemp_kg.wordnet_source on the real WordNet 3.0: the ConceptNet-style mapping, on a subset of
synsets (fast), and the whole database through build_index (slow)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kemp_kg.index import build_index, open_index
from kemp_kg.wordnet_source import RELATION_WEIGHTS, SYMMETRIC, wordnet_edges

WORDS = ("happy", "joy", "sad", "angry", "fear", "dog", "car", "tree", "love", "cry", "win",
         "water", "finger", "snore", "kill", "paris", "forest", "angrily")


class SubsetWordNet:
    """The real NLTK reader, but all_synsets() yields only the synsets of a few words."""

    def __init__(self, words: tuple[str, ...]) -> None:
        from nltk.corpus import wordnet

        self.wordnet = wordnet
        self.words = words

    def all_synsets(self):
        seen = set()
        for word in self.words:
            for synset in self.wordnet.synsets(word):
                if synset not in seen:
                    seen.add(synset)
                    yield synset


@pytest.fixture(scope="module")
def subset_edges(nltk_data: Path):
    table, counts = wordnet_edges(SubsetWordNet(WORDS))
    rows = set(zip(*(table.column(c).to_pylist() for c in ("head", "relation", "tail"))))
    return table, counts, rows


def test_mapping_on_real_synsets(subset_edges) -> None:
    table, counts, rows = subset_edges
    assert counts["rows_kept"] == table.num_rows > 1000
    # Synonym between lemmas of a synset, stored once per pair, head < tail, phrases with spaces
    assert ("dog", "Synonym", "domestic dog") in rows
    assert ("domestic dog", "Synonym", "dog") not in rows
    # IsA for hypernyms: every lemma of the synset -> the hypernym's head word
    assert ("dog", "IsA", "canine") in rows and ("domestic dog", "IsA", "canine") in rows
    # InstanceOf for instance hypernyms
    assert ("paris", "InstanceOf", "national capital") in rows
    # PartOf from part holonyms (part -> whole), member holonyms (member -> group)
    assert ("finger", "PartOf", "hand") in rows
    assert ("tree", "PartOf", "forest") in rows
    # MadeOf from substance holonyms (whole -> substance)
    assert any(r == "MadeOf" and t == "water" for _, r, t in rows)
    # Antonym (lemma level, symmetric)
    assert ("happy", "Antonym", "unhappy") in rows
    # DerivedFrom for derivationally related forms (symmetric), RelatedTo for pertainyms/attributes
    assert ("happiness", "DerivedFrom", "happy") in rows
    assert ("angrily", "RelatedTo", "angry") in rows
    # SimilarTo, Entails, Causes
    assert ("felicitous", "SimilarTo", "happy") in rows
    assert ("sleep", "Entails", "snore") in rows or ("snore", "Entails", "sleep") in rows
    assert ("kill", "Causes", "die") in rows
    # every relation/weight is documented, symmetric ones are ordered
    for head, relation, tail, weight in zip(*(table.column(c).to_pylist()
                                              for c in ("head", "relation", "tail", "weight"))):
        assert weight in RELATION_WEIGHTS[relation]
        if relation in SYMMETRIC:
            assert head <= tail
        assert head == head.lower() and "_" not in head and "_" not in tail
    assert set(table.column("head_pos").to_pylist()) <= {"n", "v", "a", "s", "r"}
    assert set(table.column("dataset").to_pylist()) == {"/d/wordnet/3.0"}


def test_happy_has_emotionally_intense_neighbours(subset_edges, nrc_vad: Path,
                                                  tmp_path: Path) -> None:
    table, _, _ = subset_edges
    pq.write_table(table.drop(["head_pos", "tail_pos", "dataset"]), tmp_path / "wn.parquet")
    build_index(tmp_path / "wn.parquet", nrc_vad, tmp_path / "idx")
    rows = open_index(tmp_path / "idx").neighbours("happy", top=5)
    assert len(rows) == 5
    assert all(r.concept_intensity > 0.6 for r in rows), rows
    assert {"glad", "joyful", "cheerful", "happiness"} & {r.concept for r in rows}


@pytest.mark.slow
def test_full_wordnet_index(nltk_data: Path, nrc_vad: Path, tmp_path: Path) -> None:
    manifest = build_index("wordnet", nrc_vad, tmp_path / "idx")
    assert manifest["source"]["kind"] == "wordnet"
    assert manifest["counts"]["synsets"] == 117659
    assert manifest["counts"]["edges"] > 400_000
    assert {"IsA", "Synonym", "Antonym", "PartOf", "SimilarTo", "DerivedFrom"} <= set(
        manifest["relations"])
    knowledge = open_index(tmp_path / "idx")
    rows = knowledge.neighbours("happy", top=10)
    assert len(rows) == 10 and all(r.concept_intensity > 0.6 for r in rows)
    again = build_index("wordnet", nrc_vad, tmp_path / "idx")
    assert again["rebuilt"] is False
