"""KEMP's text pipeline, run once per unique utterance and spread over the CPU cores.

Per utterance (official KEMP/MoEL ``clean`` + ``read_our_dataset``, made deterministic):

1. lowercase; curly apostrophes (U+2018/U+2019) become ``'``;
2. contraction expansion with :data:`CONTRACTIONS` (the official table, applied on word boundaries
   instead of the official plain substring ``replace``, so ``"it's"`` leaves ``"bit's"`` alone);
3. NLTK word tokenisation: the text is cut into sentences after ``.``, ``!`` or ``?`` followed by
   white space (a fixed rule, so the tokens do not depend on whether the ``punkt`` models are
   installed), then each sentence goes through NLTK's Treebank word tokenizer (exactly what
   ``nltk.word_tokenize`` runs per sentence);
4. POS tags from NLTK's averaged perceptron tagger over the utterance's tokens (one call per
   utterance, as the official code tags one sentence at a time);
5. query words: tokens that are alphabetic, not NLTK English stopwords, and tagged noun/verb/
   adjective/adverb (tag prefix ``N``/``V``/``J``/``R``, the official ``wordCate``);
6. WordNet lemma of each query word with its POS (``WordNetLemmatizer``), used with the surface
   form to match words to concepts.

Tagging is skipped for utterances that are never part of a history (a conversation's last
listener turn only appears as a target, so it needs tokens only).

NLTK data comes from ``NLTK_DATA`` (stopwords, ``averaged_perceptron_tagger_eng``, ``wordnet``);
:func:`ensure_nltk_data` says what is missing and tries ``nltk.download`` for online users.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kemp_kg.errors import KempError

#: The official KEMP/MoEL contraction table (``data/preprocess.py`` ``word_pairs``), in order.
CONTRACTIONS: dict[str, str] = {
    "it's": "it is",
    "don't": "do not",
    "doesn't": "does not",
    "didn't": "did not",
    "you'd": "you would",
    "you're": "you are",
    "you'll": "you will",
    "i'm": "i am",
    "they're": "they are",
    "that's": "that is",
    "what's": "what is",
    "couldn't": "could not",
    "i've": "i have",
    "we've": "we have",
    "can't": "cannot",
    "i'd": "i would",
    "aren't": "are not",
    "isn't": "is not",
    "wasn't": "was not",
    "weren't": "were not",
    "won't": "will not",
    "there's": "there is",
    "there're": "there are",
}
_CONTRACTION_RE = re.compile(
    r"(?<![\w'])(" + "|".join(re.escape(k) for k in CONTRACTIONS) + r")(?![\w'])"
)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
#: Penn tag prefix -> WordNet POS letter (the official ``get_wordnet_pos``).
QUERY_POS: dict[str, str] = {"N": "n", "V": "v", "J": "a", "R": "r"}
#: The NLTK resources the pipeline needs: (nltk.data path, download id).
NLTK_RESOURCES: tuple[tuple[str, str], ...] = (
    ("corpora/stopwords", "stopwords"),
    ("taggers/averaged_perceptron_tagger_eng", "averaged_perceptron_tagger_eng"),
    ("corpora/wordnet", "wordnet"),
)
#: Recorded in the graph file's provenance.
PIPELINE_DESCRIPTION = {
    "lowercase": True,
    "contractions": "official KEMP/MoEL word_pairs table, word-boundary match",
    "sentences": "split after [.!?] + whitespace",
    "tokenizer": "nltk Treebank word tokenizer (nltk.word_tokenize per sentence)",
    "tagger": "nltk averaged_perceptron_tagger_eng",
    "query_words": "alphabetic, not an NLTK English stopword, tag N*/V*/J*/R*",
    "lemmas": "WordNet 3.0 morphy (= nltk WordNetLemmatizer) with the tag's WordNet POS",
}
NOT_QUERY = "."


#: What to tell a user whose NLTK data is missing (also shown in every command's --help).
NLTK_HELP = (
    "NLTK data (stopwords, averaged_perceptron_tagger_eng, wordnet) is read from NLTK_DATA "
    "(default ~/nltk_data) and fetched there once when missing and online"
)


def ensure_nltk_data(*, download: bool = True) -> None:
    """Check the NLTK resources; fetch missing ones (one line on stderr); else raise one line.

    The downloader's own output (progress, per-URL errors, warnings) is swallowed: a user sees
    either "fetching NLTK data ..." or, offline, one error naming what to set.
    """
    import nltk

    missing = [package for resource, package in NLTK_RESOURCES if not _found(resource)]
    if not missing:
        return
    target = _download_dir()
    if download:
        import io
        import sys
        import warnings

        print(
            f"fetching NLTK data ({', '.join(missing)}) into {target} once "
            "(set NLTK_DATA to use a copy you already have)",
            file=sys.stderr,
            flush=True,
        )
        sink = io.StringIO()
        for package in missing:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nltk.download(
                        package,
                        download_dir=target,
                        quiet=True,
                        raise_on_error=True,
                        print_error_to=sink,
                    )
            except Exception:  # noqa: BLE001 - offline or blocked: reported below
                break
        if target not in nltk.data.path:
            nltk.data.path.insert(0, target)
        missing = [p for r, p in NLTK_RESOURCES if p in missing and not _found(r)]
    if missing:
        where = os.environ.get("NLTK_DATA") or "unset"
        paths = ", ".join(r for r, p in NLTK_RESOURCES if p in missing)
        raise KempError(
            f"NLTK data missing ({', '.join(missing)}; NLTK_DATA is {where}"
            f"{', download failed' if download else ''}): set NLTK_DATA to a folder holding "
            f"{paths} (make one where you are online: python -m nltk.downloader -d DIR "
            f"{' '.join(missing)})"
        )


def _download_dir() -> str:
    """Where missing NLTK data is fetched to: the first ``NLTK_DATA`` folder, else ~/nltk_data."""
    configured = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    return configured[0] if configured else os.path.join(os.path.expanduser("~"), "nltk_data")


def _found(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


def normalise(text: str) -> str:
    """Lowercase, straighten apostrophes, expand contractions (:data:`CONTRACTIONS`).

    The unit separator U+001F becomes a space (it separates tokens between processes).
    """
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\x1f", " ")
    return _CONTRACTION_RE.sub(lambda m: CONTRACTIONS[m.group(1)], text)


class TreebankWords:
    """NLTK's ``NLTKWordTokenizer.tokenize`` on the stdlib ``re`` engine.

    NLTK >= 3.9 routes every regex through ``nltk.redos`` (the third-party ``regex`` engine with a
    wall-clock timeout per call), which halves the tokenizer's speed. This class takes the SAME
    pattern lists from ``NLTKWordTokenizer`` at run time and applies them in the same order, on
    ``re``: identical tokens (a test compares them on real ED utterances), about 2x faster.
    The patterns are NLTK's fixed ones, never user data; as a ReDoS backstop, a sentence longer
    than :attr:`MAX_CHARS` (or a Python whose ``re`` cannot compile them) goes through NLTK's own
    timed tokenizer.
    """

    MAX_CHARS = 5000
    _FLAG_BITS = 2 | 8 | 16 | 32 | 64  # IGNORECASE, MULTILINE, DOTALL, UNICODE, VERBOSE

    def __init__(self) -> None:
        from nltk.tokenize import NLTKWordTokenizer

        base = NLTKWordTokenizer
        self.nltk = NLTKWordTokenizer()
        try:
            pairs = lambda items: [(self._re(p), sub) for p, sub in items]  # noqa: E731
            self.starting_quotes = pairs(base.STARTING_QUOTES)
            self.punctuation = pairs(base.PUNCTUATION)
            self.parens = (self._re(base.PARENS_BRACKETS[0]), base.PARENS_BRACKETS[1])
            self.double_dashes = (self._re(base.DOUBLE_DASHES[0]), base.DOUBLE_DASHES[1])
            self.ending_quotes = pairs(base.ENDING_QUOTES)
            self.contractions = [self._re(p) for p in (*base.CONTRACTIONS2, *base.CONTRACTIONS3)]
            self.fast = True
        except (re.error, AttributeError, TypeError):  # e.g. possessive quantifiers before 3.11
            self.fast = False

    @classmethod
    def _re(cls, pattern: object) -> re.Pattern[str]:
        if isinstance(pattern, re.Pattern):
            return pattern
        compiled = getattr(pattern, "_rx", pattern)  # nltk.redos.TimedPattern -> regex.Pattern
        return re.compile(compiled.pattern, compiled.flags & cls._FLAG_BITS)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one sentence (= ``NLTKWordTokenizer().tokenize(text)``)."""
        if not self.fast or len(text) > self.MAX_CHARS:
            return self.nltk.tokenize(text)
        for regexp, substitution in self.starting_quotes:
            text = regexp.sub(substitution, text)
        for regexp, substitution in self.punctuation:
            text = regexp.sub(substitution, text)
        text = self.parens[0].sub(self.parens[1], text)
        text = self.double_dashes[0].sub(self.double_dashes[1], text)
        text = " " + text + " "
        for regexp, substitution in self.ending_quotes:
            text = regexp.sub(substitution, text)
        for regexp in self.contractions:
            text = regexp.sub(r" \1 \2 ", text)
        return text.split()


@lru_cache(maxsize=1)
def _tokenizer() -> TreebankWords:
    return TreebankWords()


class PerceptronTags:
    """NLTK's averaged perceptron tagger (its own weights), with a leaner ``tag`` loop.

    ``PerceptronTagger.tag`` builds a feature ``defaultdict`` through a closure and picks the best
    class with a Python ``key`` lambda per class. This does the same arithmetic in the same order
    (features in NLTK's order, each feature's weights in their dict order, ties to the
    alphabetically greatest class), so the tags are identical (a test compares them on real
    data), at about twice the speed. Tagging is the floor of the whole pipeline.
    """

    def __init__(self) -> None:
        from nltk.tag.perceptron import PerceptronTagger

        base = PerceptronTagger()
        self.weights: dict[str, dict[str, float]] = base.model.weights
        self.tagdict: dict[str, str] = base.tagdict
        self.classes_desc = sorted(base.classes, reverse=True)
        self.start = list(base.START)
        self.end = list(base.END)
        self._normalize = base.normalize

    def tags(self, tokens: Sequence[str]) -> list[str]:
        """The Penn tag of each token (= ``[t for _, t in PerceptronTagger().tag(tokens)]``)."""
        from collections import defaultdict

        weights, tagdict, classes = self.weights, self.tagdict, self.classes_desc
        normalize = self._normalize
        context = self.start + [normalize(w) for w in tokens] + self.end
        prev, prev2 = self.start
        out: list[str] = []
        for i, word in enumerate(tokens):
            tag = tagdict.get(word)
            if not tag:
                j = i + 2
                c0, c1, c2 = context[j], context[j - 1], context[j + 1]
                features = (
                    "bias",
                    "i suffix " + word[-3:],
                    "i pref1 " + (word[0] if word else ""),
                    "i-1 tag " + prev,
                    "i-2 tag " + prev2,
                    "i tag+i-2 tag " + prev + " " + prev2,
                    "i word " + c0,
                    "i-1 tag+i word " + prev + " " + c0,
                    "i-1 word " + c1,
                    "i-1 suffix " + c1[-3:],
                    "i-2 word " + context[j - 2],
                    "i+1 word " + c2,
                    "i+1 suffix " + c2[-3:],
                    "i+2 word " + context[j + 2],
                )
                scores: defaultdict[str, float] = defaultdict(float)
                for feature in features:
                    table = weights.get(feature)
                    if table:
                        for label, weight in table.items():
                            scores[label] += weight
                tag = max(classes, key=scores.__getitem__)
            out.append(tag)
            prev2, prev = prev, tag
        return out


@lru_cache(maxsize=1)
def _tagger() -> PerceptronTags:
    return PerceptronTags()


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """NLTK's English stopword list."""
    from nltk.corpus import stopwords as corpus

    return frozenset(corpus.words("english"))


def tokenize(text: str) -> list[str]:
    """Steps 1-3: the tokens of one utterance."""
    tokenizer = _tokenizer()
    return [
        token
        for sentence in _SENTENCE_RE.split(normalise(text).strip())
        if sentence
        for token in tokenizer.tokenize(sentence)
    ]


def query_pos_string(tokens: Sequence[str]) -> str:
    """Steps 4-5: one character per token, the WordNet POS of a query word or ``.``."""
    if not tokens:
        return ""
    stop = stopwords()
    tags = _tagger().tags(tokens)
    out = []
    for token, tag in zip(tokens, tags):
        pos = QUERY_POS.get(tag[:1], NOT_QUERY)
        out.append(pos if pos != NOT_QUERY and token.isalpha() and token not in stop else NOT_QUERY)
    return "".join(out)


#: Separator of tokens inside a chunk's result string (removed from input text by normalise).
_SEP = "\x1f"


def _process_chunk(chunk: Sequence[tuple[str, bool]]) -> tuple[str, list[str]]:
    """One task: every token followed by ``_SEP`` in one string, and the per-text POS strings.

    One string per chunk instead of a list per text keeps pickling and the parent's memory
    small: the parent never holds a Python object per token.
    """
    parts: list[str] = []
    pos: list[str] = []
    for text, tag in chunk:
        tokens = tokenize(text)
        parts.extend(tok + _SEP for tok in tokens)
        pos.append(query_pos_string(tokens) if tag else NOT_QUERY * len(tokens))
    return "".join(parts), pos


@dataclass(frozen=True)
class ProcessedTexts:
    """Tokens and query-word POS of each input text, in input order, as flat arrays.

    Attributes:
        values: every token of every text, concatenated (text ``i`` holds
            ``values[offsets[i]:offsets[i + 1]]``).
        offsets: int64 array of ``len(texts) + 1`` offsets into ``values``.
        query_pos: per text, one character per token: the WordNet POS of a query word or ``.``.
    """

    values: pa.Array
    offsets: np.ndarray
    query_pos: list[str]

    def __len__(self) -> int:
        return len(self.query_pos)

    def tokens(self, i: int) -> list[str]:
        """The tokens of text ``i`` (a Python list; for tests and display)."""
        return self.values.slice(self.offsets[i], self.offsets[i + 1] - self.offsets[i]).to_pylist()


def _collect(results: Sequence[tuple[str, list[str]]]) -> ProcessedTexts:
    query_pos = [p for _, chunk_pos in results for p in chunk_pos]
    lengths = np.fromiter((len(p) for p in query_pos), dtype=np.int64, count=len(query_pos))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    joined = "".join(text for text, _ in results)
    if not joined:
        return ProcessedTexts(pa.array([], type=pa.large_string()), offsets, query_pos)
    split = pc.split_pattern(pa.array([joined], type=pa.large_string()), _SEP)
    values = split.flatten()
    values = values.slice(0, len(values) - 1)  # the text after the last separator is empty
    if len(values) != offsets[-1]:
        raise AssertionError(f"token count {len(values)} != POS count {offsets[-1]}")
    return ProcessedTexts(values, offsets, query_pos)


def process_texts(
    texts: Sequence[str],
    *,
    tag: Sequence[bool] | None = None,
    workers: int | None = None,
    chunk_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> ProcessedTexts:
    """Run steps 1-5 over unique texts, chunked over ``workers`` processes.

    Args:
        texts: the utterances (pass each distinct text once).
        tag: per text, whether it needs POS tags (default: all).
        workers: processes (default: the CPUs this process may use); small inputs run in-process.
        chunk_size: texts per task.
        progress: called with the number of texts finished after each chunk.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    ensure_nltk_data()
    tag = [True] * len(texts) if tag is None else list(tag)
    if len(tag) != len(texts):
        raise ValueError(f"tag has {len(tag)} flags for {len(texts)} texts")
    items = list(zip(texts, tag))
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    if workers is None:
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        workers = len(usable) if usable is not None else os.cpu_count()
    workers = max(1, min(int(workers or 1), len(chunks)))
    results: list[tuple[str, list[str]]] = []
    if workers == 1:
        for chunk in chunks:
            results.append(_process_chunk(chunk))
            if progress:
                progress(len(chunk))
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for chunk, done in zip(chunks, pool.imap(_process_chunk, chunks)):
                results.append(done)
                if progress:
                    progress(len(chunk))
    return _collect(results)


#: WordNet's detachment rules (NLTK ``WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS``).
_SUBSTITUTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (
        ("s", ""),
        ("ses", "s"),
        ("ves", "f"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "v": (
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}
_WORDNET_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


class Morphy:
    """WordNet's morphy, as NLTK's ``WordNetLemmatizer.lemmatize`` runs it, from the raw files.

    NLTK's corpus reader builds every synset/sense map on first use (about 2.5 s); lemmas need
    only the ``index.*`` lemma lists and the ``*.exc`` exception lists (about 0.3 s). The result
    is the same: the shortest of the exception/detachment forms that WordNet lists for the POS,
    else the word itself (a test compares the two on the real data).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        if folder is None:
            import nltk

            folder = str(nltk.data.find("corpora/wordnet"))
        self.lemmas: dict[str, frozenset[str]] = {}
        self.exceptions: dict[str, dict[str, list[str]]] = {}
        for pos, name in _WORDNET_FILES.items():
            with open(os.path.join(folder, f"index.{name}"), encoding="utf-8") as handle:
                self.lemmas[pos] = frozenset(
                    line.split(" ", 1)[0] for line in handle if not line.startswith(" ")
                )
            with open(os.path.join(folder, f"{name}.exc"), encoding="utf-8") as handle:
                table: dict[str, list[str]] = {}
                for line in handle:
                    terms = line.split()
                    if terms:
                        table[terms[0]] = terms[1:]
                self.exceptions[pos] = table

    def lemma(self, word: str, pos: str) -> str:
        """The WordNet lemma of ``word`` as POS ``pos`` (n/v/a/r), or ``word`` when none."""
        known = self.lemmas[pos]
        if word in self.exceptions[pos]:
            forms = self.exceptions[pos][word]
        else:
            forms = [
                word[: -len(old)] + new for old, new in _SUBSTITUTIONS[pos] if word.endswith(old)
            ]
        found = [f for f in dict.fromkeys([word, *forms]) if f in known]
        return min(found, key=len) if found else word

    def base_form(self, word: str, pos: str) -> str:
        """The form a sense lookup should use: an irregular inflection's base form first
        (``felt`` -> ``feel``, ``saw`` -> ``see`` as verbs, though ``felt`` and ``saw`` are verbs
        too), else the word if WordNet lists it, else :meth:`lemma`."""
        known = self.lemmas[pos]
        for form in self.exceptions[pos].get(word, ()):
            if form in known and form != word:
                return form
        return word if word in known else self.lemma(word, pos)


@lru_cache(maxsize=1)
def _morphy() -> Morphy:
    return Morphy()


def lemma(word: str, pos: str) -> str:
    """Step 6: WordNet lemma of ``word`` with WordNet POS ``pos`` (n/v/a/r)."""
    return _morphy().lemma(word, pos)


def base_form(word: str, pos: str) -> str:
    """:meth:`Morphy.base_form`: irregular inflections resolved first (for sense lookups)."""
    return _morphy().base_form(word, pos)
