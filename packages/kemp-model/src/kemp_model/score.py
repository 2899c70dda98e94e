"""Predictions files in the official KEMP format: write, parse, and score them.

The official code (qtli/KEMP) writes one five-line block per test example::

    Emotion:guilty
    Context:['first turn .', 'second turn ?']
    Concept:[defaultdict(<class 'list'>, {'word': ['concept', ...], ...})]
    Pred:oh no ! i hope you are okay .
    Ref:did you suffer any injuries ?

(each line ends with a space). ``Context`` and ``Concept`` are Python ``repr`` output. They are
parsed here as text by a small literal reader (strings, lists, dicts and the
``defaultdict(<class 'list'>, ...)`` wrapper), never evaluated. Line prefixes are removed by
length, not with ``str.strip("Pred:")`` as the official scorer does (that strips any of the
characters ``P r e d :`` from both ends, so "Pred:exactly" becomes "xactly").

:func:`score_records` computes what the field reports from such a file: corpus Distinct-1/2
(token-tuple bigrams), BLEU-1..4, and how often the same response repeats.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kemp_kg.schema import atomic_path
from kemp_model.errors import KempModelError
from kemp_model.metrics import BleuScore, corpus_bleu, distinct_n

FIELDS: tuple[str, ...] = ("Emotion", "Context", "Concept", "Pred", "Ref")

__all__ = [
    "FIELDS",
    "PredictionRecord",
    "PredictionsError",
    "ScoreReport",
    "concepts_by_word",
    "format_record",
    "parse_literal",
    "read_predictions",
    "score_predictions",
    "score_records",
    "write_predictions",
]


class PredictionsError(KempModelError):
    """A predictions file that does not follow the Emotion/Context/Concept/Pred/Ref layout."""

    exit_code = 2


@dataclass(frozen=True)
class PredictionRecord:
    """One example of a predictions file.

    Attributes:
        emotion: the gold emotion label, as written.
        context: the dialogue history, one string per turn.
        concepts: ``(word, (concept, ...))`` pairs in file order (the injected knowledge).
        pred: the generated response (whitespace-tokenised text).
        ref: the reference response.
    """

    emotion: str
    context: tuple[str, ...]
    concepts: tuple[tuple[str, tuple[str, ...]], ...]
    pred: str
    ref: str


# --------------------------------------------------------------------------------------------
# A reader for the Python-literal subset the official files use (no eval)
# --------------------------------------------------------------------------------------------

_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\n": "",
}


class _LiteralReader:
    """Recursive-descent reader of str / list / dict / ``defaultdict(<class 'list'>, {...})``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> ValueError:
        snippet = self.text[self.pos : self.pos + 20]
        return ValueError(f"{what} at character {self.pos} (near {snippet!r})")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, token: str) -> None:
        self.skip_space()
        if not self.text.startswith(token, self.pos):
            raise self.fail(f"expected {token!r}")
        self.pos += len(token)

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.string()
        if char == "[":
            return self.sequence("[", "]")
        if char == "{":
            return self.mapping()
        if self.text.startswith("defaultdict(", self.pos):
            self.pos += len("defaultdict(")
            if self.peek() == "<":  # the factory's repr, e.g. <class 'list'>
                end = self.text.find(">", self.pos)
                if end < 0:
                    raise self.fail("unterminated <...>")
                self.pos = end + 1
                self.expect(",")
            inner = self.mapping()
            self.expect(")")
            return inner
        raise self.fail("expected a string, list, dict or defaultdict")

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.fail("unterminated string")
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    raise self.fail("unterminated escape")
                code = self.text[self.pos + 1]
                if code in _ESCAPES:
                    out.append(_ESCAPES[code])
                    self.pos += 2
                elif code in "xuU":
                    size = {"x": 2, "u": 4, "U": 8}[code]
                    digits = self.text[self.pos + 2 : self.pos + 2 + size]
                    try:
                        out.append(chr(int(digits, 16)))
                    except ValueError:
                        raise self.fail(f"bad \\{code} escape") from None
                    self.pos += 2 + size
                else:  # Python keeps unknown escapes as written
                    out.append("\\" + code)
                    self.pos += 2
                continue
            out.append(char)
            self.pos += 1

    def sequence(self, open_: str, close: str) -> list[Any]:
        self.expect(open_)
        items: list[Any] = []
        if self.peek() == close:
            self.pos += 1
            return items
        while True:
            items.append(self.value())
            if self.peek() == ",":
                self.pos += 1
                if self.peek() == close:
                    self.pos += 1
                    return items
                continue
            self.expect(close)
            return items

    def mapping(self) -> dict[Any, Any]:
        self.expect("{")
        out: dict[Any, Any] = {}
        if self.peek() == "}":
            self.pos += 1
            return out
        while True:
            key = self.value()
            self.expect(":")
            out[key] = self.value()
            if self.peek() == ",":
                self.pos += 1
                if self.peek() == "}":
                    self.pos += 1
                    return out
                continue
            self.expect("}")
            return out


def parse_literal(text: str) -> Any:
    """Read a Python literal made of strings, lists, dicts and ``defaultdict(<class ...>, {...})``.

    Text only: nothing is evaluated or imported. Raises ``ValueError`` naming the position of
    anything else.
    """
    reader = _LiteralReader(text)
    result = reader.value()
    reader.skip_space()
    if reader.pos != len(text):
        raise reader.fail("unexpected text after the value")
    return result


# --------------------------------------------------------------------------------------------
# Reading and writing files
# --------------------------------------------------------------------------------------------


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is not a list of strings")
    return tuple(value)


def _concepts(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # official: a one-element list holding a defaultdict; also accept a bare dict or a list of them
    parts = value if isinstance(value, list) else [value]
    out: list[tuple[str, tuple[str, ...]]] = []
    for part in parts:
        if not isinstance(part, dict):
            raise ValueError("Concept is not a dict (or list of dicts) of word -> [concepts]")
        for word, concepts in part.items():
            out.append((str(word), _strings(concepts, f"concepts of {word!r}")))
    return tuple(out)


def read_predictions(path: str | os.PathLike[str]) -> list[PredictionRecord]:
    """Parse a predictions file of Emotion/Context/Concept/Pred/Ref blocks.

    Tolerates: trailing spaces and CRLF line ends, blank lines between blocks, a missing
    ``Concept`` line, empty Pred/Ref text, and quotes or backslashes inside the turns.

    Raises:
        PredictionsError: the file is missing, or a line is out of order or malformed (the
            message names the file and line number).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":  # a committed run record keeps its predictions gzipped
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").split("\n")  # not splitlines(): \x85 is text
    except FileNotFoundError:
        raise PredictionsError(
            f"{path}: no such predictions file; write one with `kemp-model evaluate`"
        ) from None
    except UnicodeDecodeError as exc:
        raise PredictionsError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise PredictionsError(f"{path}: damaged gzip file ({exc})") from None

    records: list[PredictionRecord] = []
    block: dict[str, Any] = {}
    block_line = 0

    def finish() -> None:
        if not block:
            return
        missing = [name for name in ("Emotion", "Context", "Pred", "Ref") if name not in block]
        if missing:
            raise PredictionsError(
                f"{path}:{block_line}: block lacks {', '.join(missing)} line(s) "
                "(expected Emotion/Context/Concept/Pred/Ref)"
            )
        records.append(
            PredictionRecord(
                emotion=block["Emotion"],
                context=block["Context"],
                concepts=block.get("Concept", ()),
                pred=block["Pred"],
                ref=block["Ref"],
            )
        )
        block.clear()

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        if not sep or name not in FIELDS:
            raise PredictionsError(
                f"{path}:{number}: expected a line starting with one of "
                f"{', '.join(f + ':' for f in FIELDS)}, got {line[:40]!r}"
            )
        if name == "Emotion":
            finish()
            block_line = number
        elif not block:
            raise PredictionsError(f"{path}:{number}: {name}: line before any Emotion: line")
        if name in block:
            raise PredictionsError(f"{path}:{number}: second {name}: line in one block")
        text = rest.strip()
        try:
            if name == "Context":
                block[name] = _strings(parse_literal(text), "Context")
            elif name == "Concept":
                block[name] = _concepts(parse_literal(text)) if text else ()
            else:
                block[name] = text
        except ValueError as exc:
            raise PredictionsError(f"{path}:{number}: {name}: {exc}") from None
    finish()
    return records


def format_record(record: PredictionRecord) -> str:
    """One block in the official layout (Python ``repr`` for Context/Concept, trailing spaces)."""
    concepts = "{" + ", ".join(f"{w!r}: {list(c)!r}" for w, c in record.concepts) + "}"
    return (
        f"Emotion:{record.emotion} \n"
        f"Context:{list(record.context)!r} \n"
        f"Concept:[defaultdict(<class 'list'>, {concepts})] \n"
        f"Pred:{record.pred} \n"
        f"Ref:{record.ref} \n"
    )


def write_predictions(path: str | os.PathLike[str], records: Iterable[PredictionRecord]) -> Path:
    """Write records in the official layout, atomically. Returns the path."""
    final = Path(path)
    with atomic_path(final) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            if "\n" in record.pred or "\n" in record.ref or "\n" in record.emotion:
                raise ValueError("Pred/Ref/Emotion text must be one line")
            handle.write(format_record(record))
    return final


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreReport:
    """Corpus figures of a set of responses against their references.

    Attributes:
        examples: number of responses.
        distinct_1 / distinct_2: corpus Distinct-n x 100 (token-tuple n-grams).
        distinct_2_joined: Distinct-2 with bigrams joined as strings without a separator, as
            the official ``result/cal_metrics.py`` does (for comparison with published numbers).
        bleu: corpus BLEU-1..4 x 100, unsmoothed (= the official scorer's definition).
        bleu_smoothed: the same with add-one smoothing of orders >= 2.
        mean_length: mean response length in tokens.
        unique_responses: number of distinct response strings.
        top_responses: the most frequent responses with their counts.
    """

    examples: int
    distinct_1: float
    distinct_2: float
    distinct_2_joined: float
    bleu: BleuScore
    bleu_smoothed: BleuScore
    mean_length: float
    unique_responses: int
    top_responses: tuple[tuple[str, int], ...] = field(default=())

    @property
    def top_share(self) -> float:
        """Share (0-1) of examples answered with the most frequent response."""
        return self.top_responses[0][1] / self.examples if self.top_responses else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "examples": self.examples,
            "distinct_1": self.distinct_1,
            "distinct_2": self.distinct_2,
            "distinct_2_joined": self.distinct_2_joined,
            **self.bleu.as_dict(),
            "bleu_smoothed": self.bleu_smoothed.as_dict(),
            "mean_length": self.mean_length,
            "unique_responses": self.unique_responses,
            "top_response_share": self.top_share,
            "top_responses": [{"response": r, "count": c} for r, c in self.top_responses],
        }


def score_records(
    predictions: Sequence[str], references: Sequence[str], *, top: int = 5
) -> ScoreReport:
    """Score responses (whitespace-tokenised strings) against one reference each.

    Raises:
        ValueError: different numbers of predictions and references, or no predictions.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions vs {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    hyps = [p.split() for p in predictions]
    refs = [r.split() for r in references]
    joined: set[str] = set()
    joined_total = 0
    for tokens in hyps:
        pairs = [tokens[i] + tokens[i + 1] for i in range(len(tokens) - 1)]
        joined.update(pairs)
        joined_total += len(pairs)
    counts = Counter(" ".join(tokens) for tokens in hyps)
    return ScoreReport(
        examples=len(hyps),
        distinct_1=distinct_n(hyps, 1),
        distinct_2=distinct_n(hyps, 2),
        distinct_2_joined=100.0 * len(joined) / joined_total if joined_total else 0.0,
        bleu=corpus_bleu(hyps, refs, max_order=4),
        bleu_smoothed=corpus_bleu(hyps, refs, max_order=4, smooth=True),
        mean_length=sum(len(t) for t in hyps) / len(hyps),
        unique_responses=len(counts),
        top_responses=tuple(counts.most_common(top)),
    )


def score_predictions(path: str | os.PathLike[str], *, top: int = 5) -> ScoreReport:
    """Parse a predictions file (:func:`read_predictions`) and score it (:func:`score_records`).

    Raises:
        PredictionsError: an unreadable or empty file.
    """
    records = read_predictions(path)
    if not records:
        raise PredictionsError(f"{path}: holds no Emotion/Context/Concept/Pred/Ref blocks")
    return score_records([r.pred for r in records], [r.ref for r in records], top=top)


def concepts_by_word(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Group ``(word, concept)`` pairs into the file's ``word -> [concepts]`` form, in order."""
    grouped: dict[str, list[str]] = {}
    for word, concept in pairs:
        grouped.setdefault(word, []).append(concept)
    return tuple((w, tuple(c)) for w, c in grouped.items())
