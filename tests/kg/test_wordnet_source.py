"""kemp_kg.wordnet_source on the real WordNet 3.0: the ``sense`` rules and the ConceptNet-style
mapping on a subset of synsets (fast: the subset holds every synset of the words looked at, so
their senses are complete), and the whole database through build_index (slow)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kemp_kg.index import build_index, open_index
from kemp_kg.wordnet_source import (
    RELATION_WEIGHTS,
    SYMMETRIC,
    conceptnet_rules,
    sense_edges,
    sense_rules,
    wordnet_edges,
    wordnet_rules,
)

WORDS = (
    "happy",
    "joy",
    "sad",
    "angry",
    "fear",
    "dog",
    "car",
    "tree",
    "love",
    "cry",
    "win",
    "water",
    "finger",
    "snore",
    "kill",
    "paris",
    "forest",
    "angrily",
)


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
    for head, relation, tail, weight in zip(
        *(table.column(c).to_pylist() for c in ("head", "relation", "tail", "weight"))
    ):
        assert weight in RELATION_WEIGHTS[relation]
        if relation in SYMMETRIC:
            assert head <= tail
        assert head == head.lower() and "_" not in head and "_" not in tail
    assert set(table.column("head_pos").to_pylist()) <= {"n", "v", "a", "s", "r"}
    assert set(table.column("dataset").to_pylist()) == {"/d/wordnet/3.0"}


def test_happy_has_emotionally_intense_neighbours(
    subset_edges, nrc_vad: Path, tmp_path: Path
) -> None:
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
        manifest["relations"]
    )
    knowledge = open_index(tmp_path / "idx")
    rows = knowledge.neighbours("happy", top=10)
    assert len(rows) == 10 and all(r.concept_intensity > 0.6 for r in rows)
    again = build_index("wordnet", nrc_vad, tmp_path / "idx")
    assert again["rebuilt"] is False


# ------------------------------------------------------------------------- the ``sense`` rules

SENSE_WORDS = (
    "get",
    "friend",
    "job",
    "know",
    "feel",
    "book",
    "paris",
    "dog",
    "canine",
    "go",
    "happy",
    "beach",
)


@pytest.fixture(scope="module")
def sense_rows(nltk_data: Path):
    table, counts = sense_edges(wordnet=SubsetWordNet(SENSE_WORDS))
    rows = {}
    for head, _pos, relation, tail, weight in zip(
        *(table.column(c).to_pylist() for c in ("head", "head_pos", "relation", "tail", "weight"))
    ):
        key = (head, relation, tail)
        rows[key] = max(rows.get(key, 0.0), weight)
    return table, counts, rows


def _tails(rows, head: str) -> set[str]:
    return {t for h, _, t in rows if h == head}


def test_sense_rules_keep_frequent_senses_weighted_by_semcor(sense_rows) -> None:
    table, counts, rows = sense_rows
    assert counts["rows_kept"] == table.num_rows > 200
    # get: get.v.01 (SemCor 235) weight 1, become.v.01 (157) (157+1)/(235+1), get.v.03 kept
    assert rows[("get", "Synonym", "acquire")] == pytest.approx(1.0)
    assert rows[("get", "Synonym", "become")] == pytest.approx(158 / 236)
    assert ("get", "Synonym", "let") in rows
    # ... but not its rare senses: get.v.32 'destroy', 'arrest', 'suffer' (SemCor 0)
    assert not {"destroy", "arrest", "suffer"} & _tails(rows, "get")
    # friend keeps friend.n.01 only, not supporter.n.01 (champion)
    assert ("friend", "IsA", "person") in rows and "champion" not in _tails(rows, "friend")
    # know: not sleep_together.v.01
    assert "love" not in _tails(rows, "know") and "sleep together" not in _tails(rows, "know")
    weights = table.column("weight").to_pylist()
    assert all(0.0 < w <= 1.0 for w in weights)


def test_sense_rules_keep_names_apart_and_read_isa_upwards(sense_rows) -> None:
    _, _, rows = sense_rows
    # proper-noun senses are not senses of the common word...
    assert "hero" not in _tails(rows, "job") and "patriarch" not in _tails(rows, "job")
    assert "apocalypse" not in _tails(rows, "book") and "revelation" not in _tails(rows, "book")
    # ...but a word that only exists as a name keeps them
    assert ("paris", "InstanceOf", "national capital") in rows
    # IsA goes up only: dog -> canine, never canine -> dog, feel -> die (die.v.05 is a hyponym)
    assert ("dog", "IsA", "canine") in rows
    assert "dog" not in _tails(rows, "canine")
    assert "die" not in _tails(rows, "feel")
    # the whole keeps its parts and substance, the part its whole
    assert ("beach", "PartOf", "shore") in rows and ("beach", "MadeOf", "sand") in rows
    # similar-to from the kept sense (happy.a.01); felicitous.s.01, happy's second sense, is
    # too rare ((2 + 1) / (37 + 1) < 0.25): happy -> felicitous only through also-see
    assert ("happy", "SimilarTo", "blissful") in rows
    assert ("happy", "RelatedTo", "felicitous") in rows
    assert ("happy", "SimilarTo", "felicitous") not in rows


def test_conceptnet_rules_reached_the_wrong_pairs(nltk_data: Path) -> None:
    """The rated wrong pairs (tests/kg/fixtures) were all edges of the earlier mapping, read both
    ways, so their absence under the new rules is the rules' doing."""
    fixture = Path(__file__).parent / "fixtures" / "wrong_pairs.tsv"
    pairs = [
        tuple(line.split("\t")[:2])
        for line in fixture.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    words = tuple(sorted({w for pair in pairs for w in pair}))
    old, _ = wordnet_edges(SubsetWordNet(words))
    both = set(zip(old.column("head").to_pylist(), old.column("tail").to_pylist()))
    both |= {(t, h) for h, t in both}
    missing = [p for p in pairs if p not in both]
    assert not missing, missing
    new, _ = sense_edges(wordnet=SubsetWordNet(words))
    forward = set(zip(new.column("head").to_pylist(), new.column("tail").to_pylist()))
    assert not [p for p in pairs if p in forward]


def test_sense_rule_flags(nltk_data: Path) -> None:
    wn = SubsetWordNet(("get",))
    every, _ = sense_edges(sense_rules().replace(senses="all"), wordnet=wn)
    every_rows = dict(
        zip(
            zip(every.column("head").to_pylist(), every.column("tail").to_pylist()),
            every.column("weight").to_pylist(),
        )
    )
    # every sense is kept, a SemCor-0 sense weighs 1 / (235 + 1)
    assert every_rows[("get", "destroy")] == pytest.approx(1 / 236)
    first, _ = sense_edges(sense_rules().replace(max_senses=1), wordnet=wn)
    get_tails = {
        t
        for h, t in zip(first.column("head").to_pylist(), first.column("tail").to_pylist())
        if h == "get"
    }
    assert "acquire" in get_tails and "become" not in get_tails
    with pytest.raises(ValueError, match="senses"):
        sense_rules().replace(senses="most")
    with pytest.raises(ValueError, match="min_share"):
        sense_rules().replace(min_share=1.5)
    with pytest.raises(ValueError, match="unknown WordNet preset"):
        wordnet_rules("bogus")
    assert conceptnet_rules().to_json() == {"preset": "conceptnet", "directed": False}


def test_build_options_fingerprint_names_the_wordnet_rules() -> None:
    from kemp_kg.index import BuildOptions

    sense = BuildOptions().fingerprint("wordnet")
    assert sense == {"wordnet": sense_rules().to_json()}
    assert BuildOptions(wordnet=conceptnet_rules()).fingerprint("wordnet") != sense
    assert BuildOptions().fingerprint("conceptnet") == {} == BuildOptions().fingerprint("triples")
