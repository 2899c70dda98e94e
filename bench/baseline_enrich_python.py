"""Plain-Python per-example baseline for `kemp-kg enrich` (what the official KEMP code does).

For every example separately, in one process: clean + tokenise each history turn and the target
(NLTK's own word tokenizer, with kemp's contraction table and sentence rule), POS-tag each history
turn with ``nltk.pos_tag`` (one call per turn per example, as ``read_our_dataset`` does),
lemmatise query words with NLTK's ``WordNetLemmatizer``, look every query word up in a Python dict
``word -> [(concept, relation, weight, intensity), ...]`` loaded once from the index's
``neighbours`` view (the official code's ``ConceptNet_VAD_dict.json``), filter/rank/cut per word
in Python, then de-duplicate and cut per example, and map tokens to ids and intensities with
dicts. No utterance is processed once for
all examples; no second core is used.

It runs on a random sample of examples (``--sample``, seeded) and the harness EXTRAPOLATES the
per-example time to the whole corpus; the one-off loads (dict from DuckDB, NLTK tagger and
WordNet) are timed apart and added once. With ``--vocab-from`` it uses the vocabulary of an
existing graph file, so its concepts can be compared with that file row by row.

    .venv/bin/python bench/baseline_enrich_python.py ../shared/data/ed --index IDX --sample 2000 \\
        --vocab-from ed.arrow --json out.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dialogues")
    parser.add_argument("--index", required=True)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-from", default=None, help="graph file whose vocab to use")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    import duckdb
    import nltk
    from nltk.corpus import stopwords as stopword_corpus
    from nltk.stem import WordNetLemmatizer
    from nltk.tokenize import NLTKWordTokenizer

    from kemp_kg import schema
    from kemp_kg.dialogues import expand_examples, read_dialogues
    from kemp_kg.presets import paper
    from kemp_kg.text import _SENTENCE_RE, QUERY_POS, normalise

    nltk_words = NLTKWordTokenizer()

    def tokenize(text: str) -> list[str]:  # nltk.word_tokenize with kemp's sentence rule
        return [
            tok
            for sentence in _SENTENCE_RE.split(normalise(text).strip())
            if sentence
            for tok in nltk_words.tokenize(sentence)
        ]

    config = paper()
    clock = time.perf_counter()
    conversations, _ = read_dialogues(args.dialogues)
    examples = expand_examples(conversations)
    read_s = time.perf_counter() - clock

    clock = time.perf_counter()
    load_cpu_clock = time.process_time()
    con = duckdb.connect(str(Path(args.index) / "index.duckdb"), read_only=True)
    concept_dict: dict[str, list[tuple[str, str, float, float]]] = {}
    for word, concept, relation, weight, intensity in con.execute(
        "SELECT word, concept, relation, weight, concept_intensity FROM neighbours"
    ).fetchall():
        concept_dict.setdefault(word, []).append((concept, relation, weight, intensity))
    lexicon = dict(con.execute("SELECT word, intensity FROM lexicon").fetchall())
    con.close()
    lemmatizer = WordNetLemmatizer()
    lemmatizer.lemmatize("warmup", "n")
    nltk.pos_tag(["warm", "up"])
    stop = set(stopword_corpus.words("english"))
    load_s = time.perf_counter() - clock
    load_cpu_s = time.process_time() - load_cpu_clock  # reading the dialogues is left out

    rng = random.Random(args.seed)
    sample = sorted(rng.sample(range(len(examples)), min(args.sample, len(examples))))

    if args.vocab_from:
        vocab = list(schema.open_graphs(args.vocab_from).vocab)
    else:  # vocabulary from the sampled training examples' tokens (per example, like the rest)
        counts: dict[str, int] = {}
        for e in sample:
            if examples[e].conversation.split == "train":
                for turn in [*examples[e].history, examples[e].target]:
                    for tok in tokenize(turn.text):
                        counts[tok] = counts.get(tok, 0) + 1
        vocab = list(schema.SPECIAL_TOKENS) + sorted(
            (t for t in counts if t not in schema.SPECIAL_TOKENS), key=lambda t: (-counts[t], t)
        )
    word2index = {w: i for i, w in enumerate(vocab)}
    excluded = set(config.excluded_relations)

    out: dict[str, list[str]] = {}
    clock = time.perf_counter()
    cpu_clock = time.process_time()
    for e in sample:
        example = examples[e]
        context_ids = [schema.CLS_ID]
        intensity = [0.0]
        candidates = []
        position = 1
        for turn in example.history:
            tokens = tokenize(turn.text)
            tagged = nltk.pos_tag(tokens)
            for token, (_, tag) in zip(tokens, tagged):
                context_ids.append(word2index.get(token, schema.UNK_ID))
                intensity.append(lexicon.get(token, 0.0))
                pos = QUERY_POS.get(tag[:1])
                if pos and token.isalpha() and token not in stop:
                    lemma = lemmatizer.lemmatize(token, pos)
                    best: dict[str, tuple[str, str, float, float]] = {}
                    for key in {token, lemma}:
                        for concept, relation, weight, inten in concept_dict.get(key, ()):
                            if (
                                relation in excluded
                                or weight <= config.min_confidence
                                or inten < config.min_concept_intensity
                                or concept in stop
                                or concept not in word2index
                                or concept in (token, lemma)
                            ):
                                continue
                            old = best.get(concept)
                            if (
                                old is None
                                or weight > old[2]
                                or (weight == old[2] and relation < old[1])
                            ):
                                best[concept] = (concept, relation, weight, inten)
                    ranked = sorted(best.values(), key=lambda c: (-c[3], -c[2], c[0]))
                    for concept, relation, weight, inten in ranked[: config.top_k_per_token]:
                        candidates.append((-inten, -weight, concept, position, relation))
                position += 1
        candidates.sort()
        seen: set[str] = set()
        chosen = []
        for item in candidates:
            if item[2] not in seen:
                seen.add(item[2])
                chosen.append(item)
            if len(chosen) == config.max_concepts_per_dialogue:
                break
        [word2index.get(t, schema.UNK_ID) for t in tokenize(example.target.text)]
        out[example.example_id] = [c[2] for c in chosen]
    per_example_s = (time.perf_counter() - clock) / max(1, len(sample))
    per_example_cpu_s = (time.process_time() - cpu_clock) / max(1, len(sample))

    figures = {
        "examples_total": len(examples),
        "sample": len(sample),
        "read_s": read_s,
        "load_s": load_s,
        "per_example_s": per_example_s,
        "per_example_cpu_s": per_example_cpu_s,
        "extrapolated_s": read_s + load_s + per_example_s * len(examples),
        "extrapolated_cpu_s": load_cpu_s + per_example_cpu_s * len(examples),
        "concepts": out,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures))
    print(json.dumps({k: v for k, v in figures.items() if k != "concepts"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
