"""Enrichment settings: one frozen :class:`EnrichConfig`, two named presets.

======================  ==========================  ==============================
setting                 ``paper`` (paper sec. 3.1)  ``official`` (released code)
======================  ==========================  ==============================
confidence filter       weight > 0.1 (alpha)        weight >= 1.0
concept intensity       any (ranked only)           eta >= 0.6
concepts per word K'    5                           1
concepts per example N  10                          10
relations dropped       PAPER_EXCLUDED_RELATIONS    OFFICIAL_EXCLUDED_RELATIONS
query words             nouns, verbs, adjectives, adverbs, not stopwords (both)
======================  ==========================  ==============================

The paper names alpha, K' and N but no relation list; ``paper`` drops the relations that say a
concept is *not* related, carry no meaning, or are a spelling of the word itself (negations,
Antonym, DistinctFrom, ExternalURL, dbpedia, etymology, FormOf). ``official`` drops the released
code's list (docs/DESIGN.md §9) and keeps its thresholds, without its bugs: both ends of an edge
are language-checked by the index, the intensity ranking is kept, and the per-example top-N
compares real-valued intensities (the official code cast them to int).

Both presets rank a word's candidate concepts by intensity (Eq. 1), then weight (desc), then the
concept string; drop concepts that are stopwords, the word itself, or not vocabulary tokens
(see :mod:`kemp_kg.vocab`); and keep single-word concepts only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kemp_kg.schema import RELATIONS

#: Orders of a word's candidates (see :class:`EnrichConfig`).
RANKINGS: tuple[str, ...] = ("intensity", "weight_x_intensity")
#: Query words that fetch no concepts in the ``sense`` preset: light verbs (the verbs of ED's
#: "i got / went / feel / made / took / said" that made up a quarter of concept slots) and
#: frequent discourse words, by WordNet base form.
LIGHT_WORDS: tuple[str, ...] = (
    "be",
    "have",
    "do",
    "get",
    "go",
    "come",
    "make",
    "take",
    "give",
    "put",
    "let",
    "keep",
    "say",
    "tell",
    "ask",
    "know",
    "think",
    "feel",
    "want",
    "need",
    "seem",
    "see",
    "look",
    "try",
    "mean",
    "thing",
    "lot",
    "bit",
    "kind",
    "sort",
    "way",
    "back",
    "last",
    "really",
    "actually",
    "pretty",
    "still",
    "even",
    "well",
    "much",
    "ever",
    "also",
    "never",
    "always",
    "lol",
    "yeah",
    "okay",
    "ok",
    "oh",
)
OFFICIAL_EXCLUDED_RELATIONS: tuple[str, ...] = (
    "Antonym",
    "ExternalURL",
    "NotDesires",
    "NotHasProperty",
    "NotCapableOf",
    "dbpedia",
    "DistinctFrom",
    "EtymologicallyDerivedFrom",
    "EtymologicallyRelatedTo",
    "SymbolOf",
    "FormOf",
    "AtLocation",
    "DerivedFrom",
    "CreatedBy",
    "Synonym",
    "MadeOf",
)
PAPER_EXCLUDED_RELATIONS: tuple[str, ...] = (
    "Antonym",
    "DistinctFrom",
    "NotDesires",
    "NotHasProperty",
    "NotCapableOf",
    "NotUsedFor",
    "ExternalURL",
    "dbpedia",
    "EtymologicallyDerivedFrom",
    "EtymologicallyRelatedTo",
    "FormOf",
)


@dataclass(frozen=True)
class EnrichConfig:
    """Every threshold of the graph step (recorded in the output's provenance).

    Attributes:
        preset: the preset this config started from (``paper``/``official``).
        min_confidence: edge weight threshold (alpha).
        confidence_inclusive: ``weight >= min_confidence`` when True, ``>`` when False.
        min_concept_intensity: keep concepts with Eq. 1 intensity >= this.
        top_k_per_token: K', at most this many concepts per query word occurrence.
        max_concepts_per_dialogue: N, at most this many concept vertices per example.
        excluded_relations: relations never followed.
        query_pos: WordNet POS letters of query words (n, v, a, r).
        min_count: vocabulary min count (training tokens rarer than this become ``<unk>``).
        rank_by: how a word's candidates (and an example's concepts) are ordered:
            ``intensity`` (the paper: Eq. 1 intensity, then weight) or ``weight_x_intensity``
            (weight times intensity, then weight: a rare sense's intense neighbour no longer
            beats a common sense's).
        match_pos: look a query word up by its WordNet base form for its tagged POS
            (``felt``/VBD -> ``feel``, verb senses only; needs POS in the index, as WordNet has);
            False: surface form and lemma, any POS (the official code).
        skip_words: query words (by base form) that never fetch concepts: light verbs and
            discourse words whose neighbours are generic and would fill the per-example cap.
        intensity_lemma_fallback: a context token outside the lexicon gets its WordNet base
            form's intensity (``got`` -> ``get``, ``months`` -> ``month``); False: surface only.
        max_history_turns: an example's history keeps at most this many turns, the newest (the
            oldest are dropped, and counted in the report). EmpatheticDialogues histories have at
            most 7 turns; the official code has no limit, but one 10,000-turn conversation made a
            1.6 GB file and training on it asked for 27 GB.
        max_turn_chars: a longer turn is cut to this many characters at a word boundary (counted
            in the report; EmpatheticDialogues turns have at most 613). Chat refuses a longer
            message instead.
    """

    preset: str
    min_confidence: float
    confidence_inclusive: bool
    min_concept_intensity: float
    top_k_per_token: int
    max_concepts_per_dialogue: int
    excluded_relations: tuple[str, ...]
    query_pos: tuple[str, ...] = ("n", "v", "a", "r")
    min_count: int = 1
    rank_by: str = "intensity"
    match_pos: bool = False
    skip_words: tuple[str, ...] = ()
    intensity_lemma_fallback: bool = False
    max_history_turns: int = 16
    max_turn_chars: int = 1000

    def __post_init__(self) -> None:
        for name in ("min_confidence", "min_concept_intensity"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.top_k_per_token < 0:
            raise ValueError(f"top_k_per_token must be >= 0, got {self.top_k_per_token}")
        if self.max_concepts_per_dialogue < 0:
            raise ValueError(
                f"max_concepts_per_dialogue must be >= 0, got {self.max_concepts_per_dialogue}"
            )
        if not 0.0 <= self.min_concept_intensity <= 1.0:
            raise ValueError(
                f"min_concept_intensity must be in [0, 1], got {self.min_concept_intensity}"
            )
        if self.rank_by not in RANKINGS:
            raise ValueError(f"rank_by must be one of {', '.join(RANKINGS)}; got {self.rank_by!r}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if self.max_history_turns < 1:
            raise ValueError(f"max_history_turns must be >= 1, got {self.max_history_turns}")
        if self.max_turn_chars < 1:
            raise ValueError(f"max_turn_chars must be >= 1, got {self.max_turn_chars}")
        unknown = [r for r in self.excluded_relations if r not in RELATIONS]
        if unknown:
            raise ValueError(f"unknown relation(s) {unknown}; known: {', '.join(RELATIONS)}")
        bad_pos = [p for p in self.query_pos if p not in ("n", "v", "a", "r")]
        if bad_pos:
            raise ValueError(f"query_pos must be among n, v, a, r; got {bad_pos}")

    def replace(self, **overrides: object) -> EnrichConfig:
        """A copy with the given (non-None) fields changed."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["excluded_relations"] = list(self.excluded_relations)
        data["query_pos"] = list(self.query_pos)
        data["skip_words"] = list(self.skip_words)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> EnrichConfig:
        """Rebuild a config from :meth:`to_json` output (e.g. a graph file's provenance)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        for key in ("excluded_relations", "query_pos", "skip_words"):
            if key in values:
                values[key] = tuple(values[key])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def paper() -> EnrichConfig:
    """The paper's settings: alpha 0.1 (weight > alpha), K' = 5, N = 10, no intensity floor."""
    return EnrichConfig(
        preset="paper",
        min_confidence=0.1,
        confidence_inclusive=False,
        min_concept_intensity=0.0,
        top_k_per_token=5,
        max_concepts_per_dialogue=10,
        excluded_relations=PAPER_EXCLUDED_RELATIONS,
    )


def official() -> EnrichConfig:
    """The released code's settings: weight >= 1.0, eta >= 0.6, 1 per word, 10 per example."""
    return EnrichConfig(
        preset="official",
        min_confidence=1.0,
        confidence_inclusive=True,
        min_concept_intensity=0.6,
        top_k_per_token=1,
        max_concepts_per_dialogue=10,
        excluded_relations=OFFICIAL_EXCLUDED_RELATIONS,
    )


def sense() -> EnrichConfig:
    """Relevance-aware retrieval for a sense-aware index (``build-index wordnet``, ``sense``
    rules): the paper's alpha, K' and N and relation list, but the word looked up by its base
    form in its own part of speech, light words skipped, candidates ranked by weight x
    intensity, and the lemma's intensity for context tokens outside the lexicon."""
    return dataclasses.replace(
        paper(),
        preset="sense",
        rank_by="weight_x_intensity",
        match_pos=True,
        skip_words=LIGHT_WORDS,
        intensity_lemma_fallback=True,
    )


PRESETS: dict[str, Callable[[], EnrichConfig]] = {
    "paper": paper,
    "official": official,
    "sense": sense,
}


def preset(name: str) -> EnrichConfig:
    """The named preset; ``ValueError`` naming the known ones otherwise."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
