"""WordNet 3.0 (through NLTK's corpus reader) as a knowledge source, in ConceptNet's relations.

Two rule sets (:class:`WordNetRules`, presets ``sense`` and ``conceptnet``):

``sense`` (the default): what a word most likely MEANS, linked to what that meaning is related to.
Every edge is written from the point of view of one word in one of its senses, and the index
reads it in that direction only (``directed``):

* **senses**: a word (lemma name, lowercased, per part of speech; adjective satellites count as
  adjectives) keeps its first WordNet sense, and a later sense only when it is among the first
  ``max_senses``, was seen at least once in SemCor (the ``tag_cnt`` of WordNet's ``index.sense``,
  what NLTK's ``Lemma.count()`` returns) and is at least ``min_share`` as frequent as the word's
  most frequent sense. ``get`` keeps get.v.01 'come into the possession of', become.v.01 and
  get.v.03, not get.v.32 'overcome or destroy'; ``friend`` keeps friend.n.01 only.
* **weight** of an edge = the relation's base weight (1.0 for the pointers ConceptNet imports,
  0.5 for the others) x the sense's share, ``(count + 1) / (top count + 1)``: 1.0 for a word's
  most frequent sense, less for rarer ones, so ``--min-confidence`` means "at least this common".
* **proper nouns** are not merged into common words: when a word has a lowercase lemma, its
  capitalised senses (the biblical Job, the Book of Revelation as ``apocalypse``) and instance
  synsets are not senses of it; a word that only exists as a name (``paris``) keeps them.
* **direction**: IsA goes up only (word -> hypernym: ``dog -> canine``; a general word does not
  offer its hyponyms, whose fan-out is 10-100 per verb, ``feel -> die`` through die.v.05);
  PartOf word -> whole and HasA word -> its parts; MadeOf word -> its substance; Entails,
  Causes, HasContext forwards; Synonym, SimilarTo, RelatedTo, DerivedFrom and Antonym are
  written from each end with that end's sense weight.

=================================  ===========  ===========================  ====
WordNet pointer (``sense``)        relation     direction (word -> concept)  base
=================================  ===========  ===========================  ====
other lemmas of the sense          Synonym      each lemma -> the others     1.0
antonym (lemma)                    Antonym      lemma -> antonym             1.0
hypernym                           IsA          word -> hypernym             1.0
instance hypernym (names only)     InstanceOf   instance -> class            1.0
part holonym                       PartOf       part -> whole                1.0
member holonym                     PartOf       member -> group              0.5
part meronym                       HasA         whole -> part                0.5
substance meronym                  MadeOf       whole -> substance           0.5
similar to / verb group            SimilarTo    word -> similar              1.0 / 0.5
also see / attribute / pertainym   RelatedTo    word -> related              1.0 / 0.5 / 0.5
derivationally related (lemma)     DerivedFrom  lemma -> derived form        1.0
entailment / cause                 Entails /    verb -> verb                 1.0
                                   Causes
topic / region / usage domain      HasContext   word -> domain               1.0
=================================  ===========  ===========================  ====

``conceptnet`` (the earlier mapping, kept to compare against): every sense of every lemma, the
way ConceptNet imports WordNet (``conceptnet5/readers/wordnet.py``), edges read both ways by the
index, weights 2.0 (ConceptNet's) or 1.0 (pointers ConceptNet 5.7 leaves out):

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

In both, synset-level pointers (hypernym, holonyms, similar to, ...) lead to the first lemma of
the target synset (WordNet's head word); lemma-level pointers (antonym, pertainym, derivation)
link the two lemmas. Terms are lowercase with underscores turned into spaces (``ice cream``);
POS is the synset's (n/v/a/s/r). The index then drops self-loops and keeps the highest weight per
(head, relation, tail).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
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
class WordNetRules:
    """How WordNet becomes edges (recorded in the index manifest's ``options``).

    Attributes:
        preset: ``sense`` or ``conceptnet`` (see the module docstring).
        senses: ``frequent`` (the sense rule below) or ``all`` (every sense of every lemma).
        max_senses: a word keeps at most its first this-many senses (per part of speech).
        min_share: a sense after the first is kept only if its SemCor count + 1 is at least this
            share of the word's top count + 1 (and its count is >= 1).
        proper_nouns: ``separate`` (capitalised and instance senses are not senses of a
            lowercase word) or ``merge`` (lowercased together, as ConceptNet does).
        directed: edges are read word -> concept only (``sense``), or both ways.
    """

    preset: str
    senses: str
    max_senses: int
    min_share: float
    proper_nouns: str
    directed: bool

    def __post_init__(self) -> None:
        if self.senses not in ("frequent", "all"):
            raise ValueError(f"senses must be 'frequent' or 'all', got {self.senses!r}")
        if self.proper_nouns not in ("separate", "merge"):
            raise ValueError(
                f"proper_nouns must be 'separate' or 'merge', got {self.proper_nouns!r}"
            )
        if self.max_senses < 1:
            raise ValueError(f"max_senses must be >= 1, got {self.max_senses}")
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"min_share must be in [0, 1], got {self.min_share}")
        if self.preset == "conceptnet" and (self.senses, self.proper_nouns, self.directed) != (
            "all",
            "merge",
            False,
        ):
            raise ValueError("the conceptnet preset has no sense options to tune")

    def replace(self, **overrides: object) -> WordNetRules:
        """A copy with the given (non-None) fields changed."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_json(self) -> dict[str, object]:
        if self.preset == "conceptnet":
            return {"preset": "conceptnet", "directed": False}
        return dataclasses.asdict(self)


def sense_rules() -> WordNetRules:
    """The default: frequent senses only, names kept apart, edges read word -> concept."""
    return WordNetRules(
        preset="sense",
        senses="frequent",
        max_senses=3,
        min_share=0.25,
        proper_nouns="separate",
        directed=True,
    )


def conceptnet_rules() -> WordNetRules:
    """The earlier mapping: every sense, as ConceptNet imports WordNet, read both ways."""
    return WordNetRules(
        preset="conceptnet",
        senses="all",
        max_senses=1,
        min_share=0.0,
        proper_nouns="merge",
        directed=False,
    )


WORDNET_PRESETS: dict[str, Callable[[], WordNetRules]] = {
    "sense": sense_rules,
    "conceptnet": conceptnet_rules,
}


def wordnet_rules(name: str) -> WordNetRules:
    """The named rule set; ``ValueError`` naming the known ones otherwise."""
    try:
        return WORDNET_PRESETS[name]()
    except KeyError:
        known = ", ".join(WORDNET_PRESETS)
        raise ValueError(f"unknown WordNet preset {name!r}; choose one of {known}") from None


@dataclass(frozen=True)
class WordNetLoad:
    """Counts (synsets, lemmas, rows emitted), skipped (always empty: WordNet is curated) and
    whether the edges are to be read head -> tail only."""

    counts: dict[str, int | None]
    skipped: dict[str, int]
    directed: bool = False


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
        for lemma, name in zip(lemma_objs, names, strict=False):
            for other in lemma.antonyms():
                add(name, pos, ANTONYM[0], _term(other.name()), other.synset().pos(), ANTONYM[1])
            for other in lemma.derivationally_related_forms():
                add(name, pos, DERIVED[0], _term(other.name()), other.synset().pos(), DERIVED[1])
            for other in lemma.pertainyms():
                add(
                    name, pos, PERTAINYM[0], _term(other.name()), other.synset().pos(), PERTAINYM[1]
                )
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


#: ``sense`` rules: synset-level pointers, NLTK method -> (relation, base weight).
SENSE_POINTERS: dict[str, tuple[str, float]] = {
    "hypernyms": ("IsA", 1.0),
    "instance_hypernyms": ("InstanceOf", 1.0),
    "part_holonyms": ("PartOf", 1.0),
    "member_holonyms": ("PartOf", 0.5),
    "part_meronyms": ("HasA", 0.5),
    "substance_meronyms": ("MadeOf", 0.5),
    "similar_tos": ("SimilarTo", 1.0),
    "verb_groups": ("SimilarTo", 0.5),
    "also_sees": ("RelatedTo", 1.0),
    "attributes": ("RelatedTo", 0.5),
    "entailments": ("Entails", 1.0),
    "causes": ("Causes", 1.0),
    "topic_domains": ("HasContext", 1.0),
    "region_domains": ("HasContext", 1.0),
    "usage_domains": ("HasContext", 1.0),
}
#: ``sense`` rules: lemma-level pointers, NLTK method -> (relation, base weight).
SENSE_LEMMA_POINTERS: dict[str, tuple[str, float]] = {
    "antonyms": ("Antonym", 1.0),
    "derivationally_related_forms": ("DerivedFrom", 1.0),
    "pertainyms": ("RelatedTo", 0.5),
}
SENSE_SYNONYM_WEIGHT = 1.0
_SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "s"}


def sense_counts(
    folder: str | os.PathLike[str] | None = None,
) -> dict[tuple[str, str, int], tuple[int, int]]:
    """WordNet's ``index.sense``: (lemma lowercased with ``_``, POS n/v/a/r/s, synset offset) ->
    (sense number, SemCor tag count), the numbers NLTK's ``Lemma.count()`` reads one at a time
    (parsed in one pass: 0.3 s instead of 18 s for every lemma)."""
    if folder is None:
        import nltk

        folder = str(nltk.data.find("corpora/wordnet"))
    table: dict[tuple[str, str, int], tuple[int, int]] = {}
    with open(os.path.join(folder, "index.sense"), encoding="utf-8") as handle:
        for line in handle:
            key, offset, number, count = line.split()
            name, _, lex_sense = key.partition("%")
            table[(name, _SS_TYPE[lex_sense[0]], int(offset))] = (int(number), int(count))
    return table


def _is_proper(synset, lemma) -> bool:
    name = lemma.name()
    return name != name.lower() or bool(synset.instance_hypernyms())


def kept_senses(wn, rules: WordNetRules, counts=None) -> dict[tuple[str, str], list[tuple]]:
    """(word, POS group n/v/a/r) -> [(synset, lemma, sense share), ...] in sense order, under
    ``rules`` (the sense rule of the module docstring)."""
    counts = sense_counts() if counts is None else counts
    groups: dict[tuple[str, str], list[tuple[int, int, object, object]]] = {}
    for synset in wn.all_synsets():
        pos = synset.pos()
        offset = synset.offset()
        group_pos = "a" if pos == "s" else pos
        for lemma in synset.lemmas():
            low = lemma.name().lower()
            number, count = counts.get((low, pos, offset), (10_000, 0))
            groups.setdefault((_term(low), group_pos), []).append((number, count, synset, lemma))
    kept: dict[tuple[str, str], list[tuple]] = {}
    for key, senses in groups.items():
        senses.sort(key=lambda item: (item[0], item[2].name()))
        if rules.proper_nouns == "separate":
            common = [s for s in senses if not _is_proper(s[2], s[3])]
            senses = common or senses
        top = max(count for _, count, _, _ in senses)
        chosen = []
        for rank, (_, count, synset, lemma) in enumerate(senses):
            share = (count + 1) / (top + 1)
            if (
                rules.senses == "frequent"
                and rank > 0
                and (rank >= rules.max_senses or count < 1 or share < rules.min_share)
            ):
                continue
            chosen.append((synset, lemma, share))
        kept[key] = chosen
    return kept


def sense_edges(
    rules: WordNetRules | None = None, wordnet=None, counts=None
) -> tuple[pa.Table, dict[str, int]]:
    """WordNet edges under the ``sense`` rules (word -> concept, sense-weighted; see the module
    docstring), as an Arrow table with the columns of :func:`wordnet_edges`, plus counts."""
    rules = rules or sense_rules()
    wn = wordnet or _wordnet()
    kept = kept_senses(wn, rules, counts)
    heads: list[str] = []
    head_pos: list[str] = []
    relations: list[str] = []
    tails: list[str] = []
    tail_pos: list[str] = []
    weights: list[float] = []
    head_cache: dict[object, tuple[str, str]] = {}

    def head_word(synset) -> tuple[str, str]:
        found = head_cache.get(synset)
        if found is None:
            found = head_cache[synset] = (_term(synset.lemmas()[0].name()), synset.pos())
        return found

    synset_pointers = list(SENSE_POINTERS.items())
    lemma_pointers = list(SENSE_LEMMA_POINTERS.items())
    senses_kept = 0
    for (word, _), senses in kept.items():
        for synset, lemma, share in senses:
            senses_kept += 1
            pos = synset.pos()

            def add(
                relation: str,
                base: float,
                tail: str,
                tpos: str,
                word: str = word,
                pos: str = pos,
                share: float = share,
            ) -> None:
                heads.append(word)
                head_pos.append(pos)
                relations.append(relation)
                tails.append(tail)
                tail_pos.append(tpos)
                weights.append(base * share)

            for other in synset.lemmas():
                name = _term(other.name())
                if name != word:
                    add("Synonym", SENSE_SYNONYM_WEIGHT, name, pos)
            for method, (relation, base) in lemma_pointers:
                for other in getattr(lemma, method)():
                    add(relation, base, _term(other.name()), other.synset().pos())
            for method, (relation, base) in synset_pointers:
                for target in getattr(synset, method)():
                    tail, tpos = head_word(target)
                    add(relation, base, tail, tpos)
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
    return table, {"words": len(kept), "senses_kept": senses_kept, "rows_kept": len(heads)}


def load_wordnet(
    con: duckdb.DuckDBPyConnection, table: str, rules: WordNetRules | None = None
) -> WordNetLoad:
    """Append WordNet's edges under ``rules`` (default :func:`sense_rules`) to ``table``
    (columns head, head_pos, relation, tail, tail_pos, weight, dataset)."""
    rules = rules or sense_rules()
    if rules.preset == "conceptnet":
        edges, counts = wordnet_edges()
    else:
        edges, counts = sense_edges(rules)
    con.register("kemp_wordnet_edges", edges)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM kemp_wordnet_edges")
    finally:
        con.unregister("kemp_wordnet_edges")
    return WordNetLoad(counts=dict(counts), skipped={}, directed=rules.directed)
