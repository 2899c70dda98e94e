"""Knowledge quality: what the enrichment injects on the ED test split, before and after.

In one run, for each arm (an index built with some WordNet rules + an enrich preset):

1. ``kemp-kg build-index wordnet --wordnet-rules RULES`` (timed under ``/usr/bin/time -v``);
2. ``kemp-kg enrich ../shared/data/ed --preset PRESET`` (all three splits, timed);
3. over the TEST split's injected concepts (one per (example, concept) slot):

   * ``sense_rank``: through which WordNet sense of its anchor word the concept is reached: the
     lowest rank (1 = the word's first sense in its POS) among the word's senses whose synset is
     linked to the concept by any pointer in either direction (lemmas, hypernyms, hyponyms,
     holonyms, meronyms, similar/also/attribute/verb group/entailment/cause/domain, antonyms,
     derivations, pertainyms); ``semcor_zero``: that sense has a SemCor count of 0;
   * per relation, the most frequent (word -> concept) pairs with their example counts,
   * the intensity profile (share >= 0.8, mean) of injected concepts,
   * concepts per example (mean, share of examples with none), the share of slots anchored on
     light words (``kemp_kg.presets.LIGHT_WORDS`` by base form),
   * ``glove_cosine``: the mean cosine between word and concept in GloVe 6B 50d (a relevance
     proxy the enrichment does not use),
   * how many slots hold a pair of the rated clearly-wrong sample
     (``tests/kg/fixtures/wrong_pairs.tsv``),
   * context intensity: share of content tokens with intensity 0 whose base form IS in the
     lexicon (what the lemma fallback fixes).

Arms: ``before`` (``conceptnet`` rules, ``paper`` preset: the earlier pipeline), ``rules``
(``sense`` rules, ``paper`` preset: the source alone) and ``after`` (``sense`` rules, ``sense``
preset). Results: ``bench/results/knowledge.json``.

    NLTK_DATA=../shared/nltk_data .venv/bin/python bench/bench_knowledge.py [--arms before,after]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from _paths import repo_relative  # bench/ is sys.path[0] when run as a script
from bench_enrich import timed

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get("KEMP_SHARED", REPO.parent / "shared"))
SCRATCH = Path(os.environ.get("KEMP_SCRATCH", REPO / "work" / "scratch"))
RESULTS = HERE / "results" / "knowledge.json"
WRONG_PAIRS = REPO / "tests" / "kg" / "fixtures" / "wrong_pairs.tsv"

ARMS: dict[str, tuple[str, str]] = {
    "before": ("conceptnet", "paper"),
    "rules": ("sense", "paper"),
    "after": ("sense", "sense"),
}

_SYNSET_LINKS = (
    "hypernyms",
    "hyponyms",
    "instance_hypernyms",
    "instance_hyponyms",
    "part_holonyms",
    "member_holonyms",
    "substance_holonyms",
    "part_meronyms",
    "member_meronyms",
    "substance_meronyms",
    "similar_tos",
    "verb_groups",
    "also_sees",
    "attributes",
    "entailments",
    "causes",
    "topic_domains",
    "region_domains",
    "usage_domains",
    "in_topic_domains",
    "in_region_domains",
    "in_usage_domains",
)
_LEMMA_LINKS = ("antonyms", "derivationally_related_forms", "pertainyms")


def read_wrong_pairs(path: Path = WRONG_PAIRS) -> list[tuple[str, str]]:
    """(word, concept) pairs of the rated sample (tab-separated, ``#`` comments)."""
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            word, concept = line.split("\t")[:2]
            pairs.append((word, concept))
    return pairs


class SenseFinder:
    """Which sense of a word reaches a concept (see the module docstring), cached per word."""

    def __init__(self) -> None:
        from nltk.corpus import wordnet

        from kemp_kg.wordnet_source import sense_counts

        self.wn = wordnet
        self.counts = sense_counts()
        self.cache: dict[str, dict[str, tuple[int, int]]] = {}

    @staticmethod
    def _term(name: str) -> str:
        return name.replace("_", " ").lower()

    def _links(self, word: str) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for pos in "nvar":
            for rank, synset in enumerate(self.wn.synsets(word, pos), start=1):
                own = [
                    lemma
                    for lemma in synset.lemmas()
                    if self.wn.morphy(word, pos) == lemma.name().lower()
                    or lemma.name().lower() == word
                ]
                count = 0
                for lemma in own:
                    key = (lemma.name().lower(), synset.pos(), synset.offset())
                    count = max(count, self.counts.get(key, (0, 0))[1])
                terms = {self._term(lemma.name()) for lemma in synset.lemmas()}
                for method in _SYNSET_LINKS:
                    for target in getattr(synset, method)():
                        terms.update(self._term(lemma.name()) for lemma in target.lemmas())
                for lemma in synset.lemmas():
                    for method in _LEMMA_LINKS:
                        terms.update(self._term(o.name()) for o in getattr(lemma, method)())
                for term in terms:
                    if term not in found or (rank, -count) < (found[term][0], -found[term][1]):
                        found[term] = (rank, count)
        return found

    def sense(self, word: str, concept: str) -> tuple[int, int] | None:
        """(rank, SemCor count) of the lowest-ranked sense linking them, or None."""
        links = self.cache.get(word)
        if links is None:
            links = self.cache[word] = self._links(word)
        return links.get(concept)


class Glove:
    """GloVe 6B 50d (``.npy`` + ``.vocab.txt``), unit rows, memory-mapped."""

    def __init__(self, npy: Path) -> None:
        words = npy.with_suffix(".vocab.txt").read_text(encoding="utf-8").split("\n")
        self.index = {w: i for i, w in enumerate(words) if w}
        self.vectors = np.load(npy, mmap_mode="r")

    def cosine(self, a: str, b: str) -> float | None:
        i, j = self.index.get(a), self.index.get(b)
        if i is None or j is None:
            return None
        x, y = np.asarray(self.vectors[i], np.float64), np.asarray(self.vectors[j], np.float64)
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))


def analyse(
    graph_path: Path,
    finder: SenseFinder,
    glove: Glove | None,
    wrong: set[tuple[str, str]],
    lexicon: dict[str, float],
) -> dict[str, object]:
    """The figures of the module docstring for the test split of one graph file."""
    sys.path.insert(0, str(REPO / "packages" / "kemp-kg" / "src"))
    from kemp_kg import schema
    from kemp_kg.presets import LIGHT_WORDS
    from kemp_kg.text import base_form, stopwords

    graphs = schema.open_graphs(graph_path)
    vocab = graphs.vocab
    table = graphs.table
    test = [i for i, s in enumerate(table["split"].to_pylist()) if s == "test"]
    sub = table.take(test)
    light = set(LIGHT_WORDS)
    ranks: Counter[str] = Counter()
    relations: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    semcor_zero = 0
    light_slots = 0
    wrong_slots = 0
    intensities: list[float] = []
    cosines: list[float] = []
    per_example: list[int] = []
    for ctx, anchors, cids, rels, inten in zip(
        sub["context_ids"].to_pylist(),
        sub["concept_anchor"].to_pylist(),
        sub["concept_ids"].to_pylist(),
        sub["concept_relation"].to_pylist(),
        sub["concept_intensity"].to_pylist(),
        strict=True,
    ):
        per_example.append(len(cids))
        for a, c, r, x in zip(anchors, cids, rels, inten, strict=True):
            word, concept = vocab[ctx[a]], vocab[c]
            pairs[(word, concept)] += 1
            relations[schema.RELATIONS[r]] += 1
            intensities.append(x)
            found = finder.sense(word, concept)
            if found is None:
                ranks["unresolved"] += 1
            else:
                rank, count = found
                ranks[str(rank) if rank < 3 else "3+"] += 1
                semcor_zero += count == 0
            bases = {base_form(word, p) for p in "nvar"} | {word}
            light_slots += bool(bases & light)
            wrong_slots += any((b, concept) in wrong for b in bases)
            if glove is not None:
                cos = glove.cosine(word, concept)
                if cos is not None:
                    cosines.append(cos)
    slots = sum(per_example)
    # context tokens: content words (alphabetic, not stopwords) with intensity 0 although their
    # base form is in the lexicon
    stop = stopwords()
    zero_fixable = content = 0
    contexts = sub["context_ids"].to_pylist()
    for ctx, inten in zip(contexts, sub["context_intensity"].to_pylist(), strict=True):
        for t, x in zip(ctx[1:], inten[1:], strict=True):
            word = vocab[t]
            if not word.isalpha() or word in stop:
                continue
            content += 1
            if (
                x == 0.0
                and word not in lexicon
                and any(base_form(word, p) in lexicon for p in "nvar")
            ):
                zero_fixable += 1

    def share(n: int) -> float:
        return round(n / slots, 4) if slots else 0.0

    arr = np.asarray(intensities, dtype=np.float64)
    return {
        "test_examples": len(per_example),
        "concept_slots": slots,
        "concepts_per_example_mean": round(float(np.mean(per_example)), 3),
        "examples_without_concepts_share": round(float(np.mean(np.asarray(per_example) == 0)), 4),
        "sense_rank_share": {k: share(v) for k, v in sorted(ranks.items())},
        "semcor_zero_sense_share": share(semcor_zero),
        "relation_share": {k: share(v) for k, v in relations.most_common()},
        "light_word_slot_share": share(light_slots),
        "wrong_pair_slots": wrong_slots,
        "intensity": {
            "mean": round(float(arr.mean()), 4) if slots else 0.0,
            "share_ge_0.8": round(float((arr >= 0.8).mean()), 4) if slots else 0.0,
            "share_lt_0.3": round(float((arr < 0.3).mean()), 4) if slots else 0.0,
        },
        "glove_cosine_mean": round(float(np.mean(cosines)), 4) if cosines else None,
        "glove_pairs_covered": round(len(cosines) / slots, 4) if slots else 0.0,
        "distinct_pairs": len(pairs),
        "top_pairs": [[w, c, n] for (w, c), n in pairs.most_common(25)],
        "context_intensity_zero_but_lemma_in_lexicon_share": round(zero_fixable / content, 4)
        if content
        else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=SCRATCH / "bench_knowledge")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse graph files already in --scratch (no timings then)",
    )
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))
    os.environ.setdefault("NLTK_DATA", env["NLTK_DATA"])
    env["COLUMNS"] = "120"
    ed = SHARED / "data" / "ed"
    lexicon_path = SHARED / "data" / "nrc_vad" / "NRC-VAD-Lexicon.txt"
    args.scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "command": "NLTK_DATA=../shared/nltk_data .venv/bin/python bench/bench_knowledge.py "
        f"--arms {','.join(arms)}",
        "arms": {},
    }
    sys.path.insert(0, str(REPO / "packages" / "kemp-kg" / "src"))
    from kemp_kg.intensity import load_lexicon

    lex = load_lexicon(lexicon_path)
    lexicon = {w: 1.0 for w in lex.to_arrow()["word"].to_pylist()}
    finder = SenseFinder()
    vectors = SHARED / "data" / "vectors" / "glove.6B.50d.npy"
    glove = Glove(vectors) if vectors.is_file() else None
    wrong = set(read_wrong_pairs())
    built: dict[str, Path] = {}
    for arm in arms:
        rules, preset = ARMS[arm]
        entry: dict[str, object] = {"wordnet_rules": rules, "preset": preset}
        index = args.scratch / f"index-{rules}"
        out = args.scratch / f"ed-{arm}.arrow"
        if not (args.reuse and out.is_file()):
            if rules not in built:
                build = timed(
                    [
                        str(BIN / "kemp-kg"),
                        "build-index",
                        "wordnet",
                        "--lexicon",
                        str(lexicon_path),
                        "--index",
                        str(index),
                        "--wordnet-rules",
                        rules,
                        "--force",
                    ],
                    env,
                )
                entry["build_index"] = {k: v for k, v in build.items() if k != "stdout"}
                built[rules] = index
            run = timed(
                [
                    str(BIN / "kemp-kg"),
                    "enrich",
                    str(ed),
                    "--index",
                    str(index),
                    "--out",
                    str(out),
                    "--preset",
                    preset,
                ],
                env,
            )
            entry["enrich"] = {k: v for k, v in run.items() if k != "stdout"}
        entry["test_split"] = analyse(out, finder, glove, wrong, lexicon)
        results["arms"][arm] = entry
        print(arm, json.dumps(entry, indent=1)[:3000])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(repo_relative(json.dumps(results, indent=1)) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
