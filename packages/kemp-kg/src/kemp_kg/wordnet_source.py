"""WordNet 3.0 (through NLTK's corpus reader) as a knowledge source, in ConceptNet's relations.

ConceptNet imports WordNet itself (``conceptnet5/readers/wordnet.py``: hypernym -> IsA,
part_meronym -> PartOf, similar -> SimilarTo, antonym -> Antonym, derivation -> DerivedFrom,
entail -> Entails, cause -> Causes, also -> RelatedTo, domains -> HasContext, synset labels ->
Synonym, every edge weight 2.0). This module follows that mapping on the NLTK reader and adds the
WordNet pointers ConceptNet 5.7 leaves out, with a lower weight so they rank below ConceptNet's own:

=================================  ===========  ===========================  ======
WordNet pointer                    relation     direction                    weight
=================================  ===========  ===========================  ======
lemmas of one synset               Synonym      symmetric (each pair once)   2.0
antonym (lemma)                    Antonym      symmetric                    2.0
hypernym                           IsA          hyponym -> hypernym          2.0
instance hypernym                  InstanceOf   instance -> class            2.0
part holonym                       PartOf       part -> whole                2.0
member holonym                     PartOf       member -> group              1.0
substance holonym                  MadeOf       whole -> substance           1.0
similar to                         SimilarTo    symmetric                    2.0
verb group                         SimilarTo    symmetric                    1.0
also see                           RelatedTo    symmetric                    2.0
attribute (noun <-> adjective)     RelatedTo    symmetric                    1.0
pertainym (lemma)                  RelatedTo    symmetric                    1.0
derivationally related (lemma)     DerivedFrom  symmetric                    2.0
entailment                         Entails      verb -> entailed verb        2.0
cause                              Causes       verb -> caused verb          2.0
topic / region / usage domain      HasContext   term -> domain               2.0
=================================  ===========  ===========================  ======

Synset-level pointers (hypernym, holonyms, similar to, ...) link EVERY lemma of the source synset
to the first lemma of the target synset (WordNet's head word; ConceptNet uses one canonical label
per synset on both ends, which would leave most lemmas with nothing but Synonym edges).
Lemma-level pointers (antonym, pertainym, derivation) link the two lemmas. Terms are lowercase with
underscores turned into spaces (``ice cream``); POS is the synset's (n/v/a/s/r). Symmetric
relations are stored once per pair, head < tail. The index then drops self-loops and keeps the
highest weight per (head, relation, tail).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from kemp_kg.errors import InputError

DATASET = "/d/wordnet/3.0"

#: relation -> weight (see the module docstring for the WordNet pointer each comes from).
SYNONYM, ANTONYM, DERIVED = ("Synonym", 2.0), ("Antonym", 2.0), ("DerivedFrom", 2.0)
PERTAINYM = ("RelatedTo", 1.0)
#: Synset-level pointers: NLTK method -> (relation, weight, reverse?). ``reverse`` swaps head/tail.
SYNSET_POINTERS: dict[str, tuple[str, float, bool]] = {
    "hypernyms": ("IsA", 2.0, False),
    "instance_hypernyms": ("InstanceOf", 2.0, False),
    "part_holonyms": ("PartOf", 2.0, False),
    "member_holonyms": ("PartOf", 1.0, False),
    "substance_holonyms": ("MadeOf", 1.0, True),
    "similar_tos": ("SimilarTo", 2.0, False),
    "verb_groups": ("SimilarTo", 1.0, False),
    "also_sees": ("RelatedTo", 2.0, False),
    "attributes": ("RelatedTo", 1.0, False),
    "entailments": ("Entails", 2.0, False),
    "causes": ("Causes", 2.0, False),
    "topic_domains": ("HasContext", 2.0, False),
    "region_domains": ("HasContext", 2.0, False),
    "usage_domains": ("HasContext", 2.0, False),
}
#: Relations stored once per unordered pair (head < tail).
SYMMETRIC: frozenset[str] = frozenset(
    {"Synonym", "Antonym", "SimilarTo", "RelatedTo", "DerivedFrom"}
)

#: Every (relation, weight) this source can emit, for documentation and tests.
RELATION_WEIGHTS: dict[str, tuple[float, ...]] = {}
_ALL = (SYNONYM, ANTONYM, DERIVED, PERTAINYM, *((r, w) for r, w, _ in SYNSET_POINTERS.values()))
for _rel, _w in _ALL:
    RELATION_WEIGHTS[_rel] = tuple(sorted(set(RELATION_WEIGHTS.get(_rel, ())) | {_w}))


def _wordnet():
    """NLTK's WordNet reader, or an InputError saying how to get WordNet 3.0."""
    import nltk
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        raise InputError(
            "WordNet 3.0 not found in NLTK data (searched "
            + ", ".join(nltk.data.path[:4])
            + ", ...); set NLTK_DATA to a folder holding corpora/wordnet "
            "(e.g. `python -m nltk.downloader -d DIR wordnet`)"
        ) from None
    return wordnet


def wordnet_files() -> list[Path]:
    """The WordNet database files NLTK reads (sorted by name), for checksums and sizes."""
    import nltk

    _wordnet()
    pointer = nltk.data.find("corpora/wordnet")
    root = Path(str(getattr(pointer, "path", "")))
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file())
    else:  # corpora/wordnet.zip
        files = [Path(pointer.zipfile.filename)]  # type: ignore[attr-defined]
    if not files:
        raise InputError(f"{root}: WordNet folder is empty; reinstall NLTK's wordnet data")
    return files


@dataclass(frozen=True)
class WordNetLoad:
    """Counts (synsets, lemmas, rows emitted) and skipped (always empty: WordNet is curated)."""

    counts: dict[str, int | None]
    skipped: dict[str, int]


def _term(name: str) -> str:
    return name.replace("_", " ").lower()


def wordnet_edges(wordnet=None) -> tuple[pa.Table, dict[str, int]]:
    """All WordNet edges as an Arrow table (head, head_pos, relation, tail, tail_pos, weight,
    dataset), before deduplication, plus counts. See the module docstring for the mapping."""
    wn = wordnet or _wordnet()
    heads: list[str] = []
    head_pos: list[str] = []
    relations: list[str] = []
    tails: list[str] = []
    tail_pos: list[str] = []
    weights: list[float] = []

    def add(h: str, hp: str, rel: str, t: str, tp: str, w: float) -> None:
        if rel in SYMMETRIC and t < h:
            h, hp, t, tp = t, tp, h, hp
        heads.append(h)
        head_pos.append(hp)
        relations.append(rel)
        tails.append(t)
        tail_pos.append(tp)
        weights.append(w)

    synsets = 0
    lemmas = 0
    pointer_methods = [(name, *spec) for name, spec in SYNSET_POINTERS.items()]
    for synset in wn.all_synsets():
        synsets += 1
        pos = synset.pos()
        lemma_objs = synset.lemmas()
        names = [_term(lemma.name()) for lemma in lemma_objs]
        lemmas += len(names)
        unique = list(dict.fromkeys(names))
        for i, first in enumerate(unique):
            for second in unique[i + 1 :]:
                add(first, pos, SYNONYM[0], second, pos, SYNONYM[1])
        for lemma, name in zip(lemma_objs, names):
            for other in lemma.antonyms():
                add(name, pos, ANTONYM[0], _term(other.name()), other.synset().pos(), ANTONYM[1])
            for other in lemma.derivationally_related_forms():
                add(name, pos, DERIVED[0], _term(other.name()), other.synset().pos(), DERIVED[1])
            for other in lemma.pertainyms():
                add(name, pos, PERTAINYM[0], _term(other.name()), other.synset().pos(),
                    PERTAINYM[1])
        for method, relation, weight, reverse in pointer_methods:
            targets: Iterable = getattr(synset, method)()
            for target in targets:
                target_name = _term(target.lemmas()[0].name())
                target_pos = target.pos()
                for name in unique:
                    if reverse:
                        add(target_name, target_pos, relation, name, pos, weight)
                    else:
                        add(name, pos, relation, target_name, target_pos, weight)
    table = pa.table(
        {
            "head": pa.array(heads, pa.string()),
            "head_pos": pa.array(head_pos, pa.string()),
            "relation": pa.array(relations, pa.string()),
            "tail": pa.array(tails, pa.string()),
            "tail_pos": pa.array(tail_pos, pa.string()),
            "weight": pa.array(weights, pa.float64()),
            "dataset": pa.array([DATASET] * len(heads), pa.string()),
        }
    )
    return table, {"synsets": synsets, "lemmas": lemmas, "rows_kept": len(heads)}


def load_wordnet(con: duckdb.DuckDBPyConnection, table: str) -> WordNetLoad:
    """Append WordNet's edges to ``table`` (columns head, head_pos, relation, tail, tail_pos,
    weight, dataset)."""
    edges, counts = wordnet_edges()
    con.register("kemp_wordnet_edges", edges)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM kemp_wordnet_edges")
    finally:
        con.unregister("kemp_wordnet_edges")
    return WordNetLoad(counts=dict(counts), skipped={})
