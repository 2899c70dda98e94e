"""Generate an official-format ConceptNet assertions dump of N rows, for benchmarks.

    .venv/bin/python bench/generate_conceptnet.py work/scratch/cn-5.9M.csv --rows 5900000
    .venv/bin/python bench/generate_conceptnet.py work/scratch/cn-34M.csv.gz --rows 34000000

Each line is the official 5-column tab-separated layout (assertion URI, relation URI, start URI,
end URI, JSON metadata with ``dataset``, ``license``, ``sources``, ``weight`` and, for the
crowd-sourced datasets, ``surfaceText``/``surfaceStart``/``surfaceEnd``). The mix imitates
ConceptNet 5.7 (34,074,917 assertions):

* about 10% English-English rows, the rest other languages (about 30 codes), cross-language
  Synonym/translation edges and ExternalURL edges whose end is a URL;
* relations drawn with ConceptNet 5.7-like shares (approximate; ExternalURL, Synonym, RelatedTo,
  FormOf, DerivedFrom and HasContext dominate, the commonsense relations are rare);
* weights: mostly 1.0, WordNet-style 2.0, OMCS-style sqrt(k) for k votes, and fractional
  (0.1-1.0) weights of the automatically derived RelatedTo edges;
* terms from synthetic per-language vocabularies with a Zipf-like popularity, 10% multi-word
  (``ice_cream``), with and without ``/pos`` and ``/pos/wn/...`` sense suffixes, so that the
  index has real duplicates and self-loops to remove.

Rows are built in chunks with numpy and written as one string per chunk (a ``.gz`` target is
piped through ``gzip -1`` in a second process). Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: (relation, share of all rows) - approximate ConceptNet 5.7 shares.
RELATIONS: tuple[tuple[str, float], ...] = (
    ("ExternalURL", 0.25),
    ("Synonym", 0.14),
    ("RelatedTo", 0.13),
    ("FormOf", 0.11),
    ("DerivedFrom", 0.09),
    ("HasContext", 0.04),
    ("EtymologicallyRelatedTo", 0.03),
    ("IsA", 0.05),
    ("SimilarTo", 0.01),
    ("AtLocation", 0.01),
    ("UsedFor", 0.01),
    ("HasSubevent", 0.007),
    ("HasPrerequisite", 0.007),
    ("CapableOf", 0.006),
    ("Antonym", 0.006),
    ("Causes", 0.005),
    ("PartOf", 0.004),
    ("MotivatedByGoal", 0.003),
    ("HasProperty", 0.003),
    ("ReceivesAction", 0.002),
    ("Desires", 0.002),
    ("HasA", 0.002),
    ("DistinctFrom", 0.002),
    ("CausesDesire", 0.001),
    ("MannerOf", 0.001),
    ("EtymologicallyDerivedFrom", 0.001),
    ("HasFirstSubevent", 0.001),
    ("HasLastSubevent", 0.001),
    ("NotDesires", 0.001),
    ("DefinedAs", 0.0005),
    ("MadeOf", 0.0005),
    ("InstanceOf", 0.0005),
    ("LocatedNear", 0.0005),
    ("SymbolOf", 0.0003),
    ("CreatedBy", 0.0003),
    ("Entails", 0.0003),
    ("NotCapableOf", 0.0002),
    ("NotHasProperty", 0.0002),
    ("NotUsedFor", 0.0001),
    ("ObstructedBy", 0.0001),
    ("dbpedia/genre", 0.0005),
    ("dbpedia/capital", 0.0003),
    ("dbpedia/occupation", 0.0003),
    ("dbpedia/language", 0.0002),
)

OTHER_LANGUAGES: tuple[str, ...] = (
    "fr",
    "de",
    "ja",
    "zh",
    "es",
    "it",
    "ru",
    "pt",
    "nl",
    "fi",
    "pl",
    "sv",
    "la",
    "ms",
    "tr",
    "cs",
    "hu",
    "ca",
    "eo",
    "ar",
    "ko",
    "el",
    "da",
    "no",
    "ro",
    "gl",
    "is",
    "grc",
    "ga",
    "fa",
)

DATASETS: tuple[tuple[str, str, str, bool], ...] = (
    # dataset, license, sources JSON, has surface text
    (
        "/d/conceptnet/4/en",
        "cc:by/4.0",
        '[{"activity": "/s/activity/omcs/omcs1_possibly_free_text", '
        '"contributor": "/s/contributor/omcs/user%d"}]',
        True,
    ),
    (
        "/d/wiktionary/en",
        "cc:by-sa/4.0",
        '[{"contributor": "/s/resource/wiktionary/en", "process": "/s/process/wikiparsec/2"}]',
        False,
    ),
    ("/d/wordnet/3.1", "cc:by/4.0", '[{"contributor": "/s/resource/wordnet/rdf/3.1"}]', True),
    (
        "/d/verbosity",
        "cc:by/4.0",
        '[{"contributor": "/s/resource/verbosity", "process": "/s/process/split_words"}]',
        True,
    ),
    ("/d/dbpedia/en", "cc:by-sa/4.0", '[{"contributor": "/s/resource/dbpedia/2015/en"}]', False),
    ("/d/jmdict", "cc:by-sa/4.0", '[{"contributor": "/s/resource/jmdict/1.07"}]', False),
    ("/d/opencyc", "cc:by/4.0", '[{"contributor": "/s/resource/opencyc/2012"}]', False),
    (
        "/d/conceptnet/4/ja",
        "cc:by/4.0",
        '[{"activity": "/s/activity/nadya.jp", "contributor": "/s/contributor/nadya.jp/%d"}]',
        True,
    ),
)

SYLLABLES = (
    "ka ri to na mo su lo pe an er in ta ve di co ul be sa mi ro zu el on ar is "
    "ne ba fu ho ki le ma ni pa qu ra si tu wa ye zo"
).split()


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """``size`` distinct synthetic words (10% two-word phrases joined by ``_``)."""
    words: set[str] = set()
    while len(words) < size:
        n = size - len(words)
        lengths = rng.integers(2, 6, n).tolist()
        picks = rng.integers(0, len(SYLLABLES), (n, 5)).tolist()
        words.update(
            "".join([SYLLABLES[j] for j in row[:length]]) for length, row in zip(lengths, picks)
        )
    out = sorted(words)[:size]
    rng.shuffle(out)
    phrase = rng.random(len(out)).tolist()
    partner = rng.integers(0, len(out), len(out)).tolist()
    return [f"{w}_{out[p]}" if ph < 0.10 else w for w, ph, p in zip(out, phrase, partner)]


def popular_indices(rng: np.random.Generator, n: int, vocab_size: int) -> np.ndarray:
    """Indices into a vocabulary with a skewed popularity (density ~ 1/sqrt(rank)): frequent
    words recur, so the index has duplicates and self-loops to remove, but no single word
    dominates."""
    return (vocab_size * rng.random(n) ** 2).astype(np.int64)


POS_SUFFIXES = ("", "", "", "/n", "/v", "/a", "/n/wn/food", "/v/wn/motion", "/n/wikt/en_1", "/r")
SURFACE = {
    "IsA": "[[{0}]] is a type of [[{1}]]",
    "UsedFor": "[[{0}]] is used for [[{1}]]",
    "AtLocation": "*Something you find at [[{1}]] is [[{0}]]",
    "RelatedTo": "[[{0}]] is related to [[{1}]]",
    "HasA": "[[{0}]] has [[{1}]]",
}


def generate(
    path: Path,
    rows: int,
    seed: int = 0,
    chunk: int = 200_000,
    english_share: float = 0.10,
    words: list[str] | None = None,
) -> dict[str, object]:
    """Write the dump; returns a summary (rows, bytes, English-English rows, seconds).

    ``words``: real English words (e.g. the NRC-VAD lexicon's, read at run time, never stored)
    to use as the most popular English terms, so intensity lookups hit as they do on ConceptNet.
    """
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    english = vocabulary(rng, 300_000)
    if words:
        real = [w.replace(" ", "_") for w in words][:300_000]
        rng.shuffle(real)
        english = real + english[len(real) :]
        # interleave so real words sit among the most popular ranks
        english[: 2 * len(real)] = [
            x
            for pair in zip(english[: len(real)], english[len(real) : 2 * len(real)])
            for x in pair
        ]
    others = {lang: vocabulary(rng, 40_000) for lang in OTHER_LANGUAGES}
    rel_names = [r for r, _ in RELATIONS]
    rel_p = np.array([p for _, p in RELATIONS])
    rel_p = rel_p / rel_p.sum()
    ext = rel_names.index("ExternalURL")
    syn = rel_names.index("Synonym")
    lang_ids = np.arange(len(OTHER_LANGUAGES))
    gz = path.name.endswith(".gz")
    tmp = path.with_name(path.name + ".tmp")
    raw = open(tmp, "wb")
    proc = None
    sink = raw
    if gz:
        proc = subprocess.Popen(["gzip", "-1", "-c"], stdin=subprocess.PIPE, stdout=raw)
        sink = proc.stdin  # type: ignore[assignment]
    english_rows = 0
    try:
        for begin in range(0, rows, chunk):
            n = min(chunk, rows - begin)
            rel = rng.choice(len(rel_names), n, p=rel_p)
            # kind: 0 en-en, 1 other-other (same language), 2 cross-language, 3 external URL
            kind = np.where(rng.random(n) < english_share, 0, 1)
            cross = (kind == 1) & (rel == syn) & (rng.random(n) < 0.5)
            kind = np.where(cross, 2, kind)
            kind = np.where(rel == ext, 3, kind)
            # keep the English-English share at english_share after ExternalURL took its rows
            kind = np.where((rel != ext) & (rng.random(n) < english_share * 0.75), 0, kind)
            kind = np.where((kind == 0) & (rng.random(n) < 0.25), 1, kind)
            lang = rng.choice(lang_ids, n)
            a = popular_indices(rng, n, 300_000)
            b = popular_indices(rng, n, 300_000)
            self_loop = rng.random(n) < 0.002
            b = np.where(self_loop, a, b)
            # ~2% repeat the previous row's assertion with another sense/POS and weight (the
            # same (head, relation, tail) after parsing: the index keeps the highest weight)
            repeat = np.flatnonzero(rng.random(n) < 0.02)
            repeat = repeat[repeat > 0]
            for column in (a, b, rel, kind, lang):
                column[repeat] = column[repeat - 1]
            english_rows += int((kind == 0).sum())
            pos_a = rng.integers(0, len(POS_SUFFIXES), n)
            pos_b = rng.integers(0, len(POS_SUFFIXES), n)
            ds = rng.integers(0, len(DATASETS), n)
            wkind = rng.random(n)
            votes = rng.integers(2, 20, n)
            frac = np.round(rng.uniform(0.1, 1.0, n), 3)
            weight = np.where(
                wkind < 0.72,
                1.0,
                np.where(
                    wkind < 0.84, 2.0, np.where(wkind < 0.92, np.round(np.sqrt(votes), 3), frac)
                ),
            )
            contributor = rng.integers(0, 5000, n)
            # plain Python lists: indexing numpy arrays element by element is several times slower
            rel, kind, lang, a, b = (x.tolist() for x in (rel, kind, lang, a, b))
            pos_a, pos_b, ds, contributor = (x.tolist() for x in (pos_a, pos_b, ds, contributor))
            weight = weight.tolist()
            lines = []
            append = lines.append
            for i in range(n):
                r = rel_names[rel[i]]
                k = kind[i]
                if k == 0:
                    s = f"/c/en/{english[a[i]]}{POS_SUFFIXES[pos_a[i]]}"
                    e = f"/c/en/{english[b[i]]}{POS_SUFFIXES[pos_b[i]]}"
                elif k == 1:
                    code = OTHER_LANGUAGES[lang[i]]
                    vocab = others[code]
                    s = f"/c/{code}/{vocab[a[i] % 40_000]}{POS_SUFFIXES[pos_a[i]]}"
                    e = f"/c/{code}/{vocab[b[i] % 40_000]}"
                elif k == 2:
                    code = OTHER_LANGUAGES[lang[i]]
                    s = f"/c/{code}/{others[code][a[i] % 40_000]}"
                    e = f"/c/en/{english[b[i]]}"
                    if pos_a[i] & 1:
                        s, e = e, s
                else:
                    code = "en" if pos_b[i] < 4 else OTHER_LANGUAGES[lang[i]]
                    word = english[a[i]] if code == "en" else others[code][a[i] % 40_000]
                    s = f"/c/{code}/{word}"
                    e = f"http://{code}.wiktionary.org/wiki/{word}"
                dataset, license_, sources, surface = DATASETS[ds[i]]
                if "%d" in sources:
                    sources = sources % contributor[i]
                extra = ""
                if surface and r in SURFACE:
                    left = s.split("/")[3].replace("_", " ")
                    right = e.split("/")[3].replace("_", " ") if e.startswith("/c/") else e
                    extra = (
                        f', "surfaceEnd": {json.dumps(right)}, "surfaceStart": '
                        f'{json.dumps(left)}, "surfaceText": '
                        f"{json.dumps(SURFACE[r].format(left, right))}"
                    )
                append(
                    f"/a/[/r/{r}/,{s}/,{e}/]\t/r/{r}\t{s}\t{e}\t"
                    f'{{"dataset": "{dataset}", "license": "{license_}", "sources": {sources}'
                    f'{extra}, "weight": {weight[i]!r}}}\n'
                )
            sink.write("".join(lines).encode())
    finally:
        if proc is not None:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait()
        raw.close()
    if proc is not None and proc.returncode != 0:
        raise RuntimeError(f"gzip exited with {proc.returncode}")
    os.replace(tmp, path)
    return {
        "path": str(path),
        "rows": rows,
        "english_english_rows": english_rows,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="output file (.csv or .csv.gz)")
    parser.add_argument("--rows", type=int, default=5_900_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--words",
        type=Path,
        default=None,
        help="a lexicon file (NRC-VAD layout) whose words become popular English "
        "terms (read at run time, not stored)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be >= 1, got {args.rows}")
    args.path.parent.mkdir(parents=True, exist_ok=True)
    words = None
    if args.words:
        lines = args.words.read_text(encoding="utf-8").splitlines()[1:]
        words = [line.split("\t")[0] for line in lines if line.strip()]
    print(json.dumps(generate(args.path, args.rows, args.seed, words=words)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
