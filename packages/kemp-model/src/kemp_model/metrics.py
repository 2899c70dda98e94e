"""Metrics as mergeable values, and the corpus metrics of the field (docs/DESIGN.md §7).

Mergeable values (ParlAI ``metrics.py`` style): a batch produces small metric objects that hold
their *sufficient statistics* (a sum, or a numerator and a denominator), not a finished number.
Adding two of them merges the statistics, so per-batch values add up to per-epoch values and
per-rank values all-reduce to the global value, with the exact result of computing over the whole
corpus at once::

    epoch = Metrics()
    for batch in loader:
        epoch += Metrics(loss=AverageMetric(loss_sum, n), ppl=PerplexityMetric(nll_sum, tokens))
    epoch = epoch.all_reduce()          # DDP: sums the statistics over ranks
    epoch.value()                       # {"loss": ..., "ppl": ...}

Corpus metrics, as KEMP and its successors report them:

* :func:`perplexity`: ``exp(nll_sum / token_count)``, the mean token NLL of the reference
  responses (teacher-forced, no label smoothing in that number).
* :func:`emotion_accuracy`: share of examples whose predicted label (argmax over the 32
  emotions) equals the gold label.
* :func:`distinct_n`: corpus-level distinct n-grams / all generated n-grams x 100, n-grams as
  token tuples (the official scorer joins bigrams as strings, so "a"+"bc" == "ab"+"c"; ours
  does not).
* :func:`corpus_bleu`: corpus BLEU-1..4 (Papineni et al. 2002: clipped n-gram counts summed over
  the corpus, geometric mean of orders ``1..n``, brevity penalty over total lengths), x100, with
  optional Lin & Och (2004) add-one smoothing of orders >= 2. Unsmoothed, it equals the official
  KEMP ``result/cal_metrics.py`` figures.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AverageMetric",
    "BleuScore",
    "Metric",
    "Metrics",
    "PerplexityMetric",
    "SumMetric",
    "corpus_bleu",
    "distinct_n",
    "emotion_accuracy",
    "ngrams",
    "perplexity",
]


def _number(value: Any) -> float:
    """A Python float from an int, float, numpy scalar or 0-d/1-element tensor."""
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


# --------------------------------------------------------------------------------------------
# Mergeable values
# --------------------------------------------------------------------------------------------


class Metric:
    """A metric value that merges with another of its kind by adding sufficient statistics.

    Subclasses are frozen dataclasses whose fields are the statistics; :meth:`state` lists them
    as floats (what :meth:`Metrics.all_reduce` sums across ranks) and :meth:`from_state` rebuilds
    the value.
    """

    #: Number of floats in :meth:`state`.
    width: ClassVar[int] = 1

    def value(self) -> float:
        """The finished number."""
        raise NotImplementedError

    def state(self) -> tuple[float, ...]:
        """The sufficient statistics, as floats (summed element-wise when merging)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Sequence[float]) -> Metric:
        """Rebuild a value of this class from :meth:`state` numbers."""
        return cls(*state)  # type: ignore[call-arg]

    def __add__(self, other: Metric) -> Metric:
        if other is None:  # type: ignore[comparison-overlap]
            return self
        if type(other) is not type(self):
            raise ValueError(f"cannot merge {type(self).__name__} with {type(other).__name__}")
        return type(self).from_state([a + b for a, b in zip(self.state(), other.state())])

    def __radd__(self, other: Any) -> Metric:
        if other == 0 or other is None:  # lets sum(list_of_metrics) work
            return self
        return self.__add__(other)

    def __float__(self) -> float:
        return self.value()


@dataclass(frozen=True)
class SumMetric(Metric):
    """A count or a total that adds up across batches and ranks (examples seen, tokens, ...)."""

    total: float = 0.0
    width: ClassVar[int] = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", _number(self.total))

    def value(self) -> float:
        return self.total

    def state(self) -> tuple[float, ...]:
        return (self.total,)


@dataclass(frozen=True)
class AverageMetric(Metric):
    """``numer / denom`` kept as its two parts, so merged averages weight each part by its size.

    ``AverageMetric(3, 4) + AverageMetric(1, 4)`` is ``4 / 8 = 0.5``, not the mean of 0.75 and
    0.25 by accident: it is the mean over all 8 items. A zero denominator has value ``nan``.
    """

    numer: float = 0.0
    denom: float = 0.0
    width: ClassVar[int] = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "numer", _number(self.numer))
        object.__setattr__(self, "denom", _number(self.denom))
        if self.denom < 0:
            raise ValueError(f"AverageMetric denominator must be >= 0, got {self.denom}")

    def value(self) -> float:
        return self.numer / self.denom if self.denom else math.nan

    def state(self) -> tuple[float, ...]:
        return (self.numer, self.denom)


@dataclass(frozen=True)
class PerplexityMetric(AverageMetric):
    """Perplexity from ``(nll_sum, token_count)``: ``exp(nll_sum / token_count)``.

    Merge the sums, never the perplexities: the exponent of a mean is not the mean of exponents.
    """

    def value(self) -> float:
        return perplexity(self.numer, self.denom)


class Metrics(Mapping[str, Metric]):
    """An immutable name -> :class:`Metric` mapping that merges with ``+`` / :meth:`merge`.

    Merging takes the union of the names; a name present on both sides is merged with ``+``
    (which requires the same metric class).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Metric] | None = None, /, **named: Metric) -> None:
        merged = dict(items or {})
        merged.update(named)
        for name, metric in merged.items():
            if not isinstance(metric, Metric):
                raise ValueError(f"metric {name!r} is a {type(metric).__name__}, not a Metric")
        self._items: dict[str, Metric] = merged

    def __getitem__(self, name: str) -> Metric:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v.value():.6g}" for k, v in sorted(self._items.items()))
        return f"Metrics({inner})"

    def merge(self, other: Mapping[str, Metric]) -> Metrics:
        """A new :class:`Metrics` holding the union of both, common names merged."""
        out = dict(self._items)
        for name, metric in other.items():
            out[name] = out[name] + metric if name in out else metric
        return Metrics(out)

    def __add__(self, other: Mapping[str, Metric]) -> Metrics:
        return self.merge(other)

    def __radd__(self, other: Any) -> Metrics:
        if other == 0 or other is None:  # lets sum(list_of_metrics) work
            return self
        return Metrics(other).merge(self)

    def value(self) -> dict[str, float]:
        """Every metric's finished number, by name (sorted)."""
        return {name: self._items[name].value() for name in sorted(self._items)}

    def all_reduce(self, group: Any = None) -> Metrics:
        """Sum the statistics over the ranks of ``torch.distributed`` (a no-op when not running).

        Every rank must hold the same names with the same classes (checked with a checksum of
        the names, so a mismatch raises ``ValueError`` on every rank instead of mixing values).
        The statistics travel as one float64 tensor; no pickling.
        """
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        names = sorted(self._items)
        spec = ";".join(f"{n}:{type(self._items[n]).__name__}" for n in names)
        backend = dist.get_backend(group)
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )
        check = torch.tensor([zlib.crc32(spec.encode())], dtype=torch.float64, device=device)
        low, high = check.clone(), check.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN, group=group)
        dist.all_reduce(high, op=dist.ReduceOp.MAX, group=group)
        if low.item() != high.item():
            raise ValueError(f"ranks hold different metric names; this rank has [{spec}]")
        flat = [x for n in names for x in self._items[n].state()]
        if not flat:
            return self
        buffer = torch.tensor(flat, dtype=torch.float64, device=device)
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=group)
        values = buffer.tolist()
        out: dict[str, Metric] = {}
        offset = 0
        for name in names:
            metric = self._items[name]
            width = len(metric.state())
            out[name] = type(metric).from_state(values[offset : offset + width])
            offset += width
        return Metrics(out)


# --------------------------------------------------------------------------------------------
# Corpus metrics
# --------------------------------------------------------------------------------------------


def perplexity(nll_sum: float, token_count: float) -> float:
    """``exp(nll_sum / token_count)``: perplexity from summed token NLL (natural log).

    Raises:
        ValueError: ``token_count <= 0`` (no tokens: perplexity is undefined).
    """
    nll_sum, token_count = _number(nll_sum), _number(token_count)
    if token_count <= 0:
        raise ValueError(f"perplexity needs token_count > 0, got {token_count}")
    mean = nll_sum / token_count
    return math.exp(mean) if mean < 700 else math.inf


def emotion_accuracy(predicted: Iterable[Any], gold: Iterable[Any]) -> AverageMetric:
    """Share of examples whose predicted emotion id equals the gold id, as a mergeable value.

    Args:
        predicted: predicted label ids (ints, or a 1-d tensor of argmax ids). Pass logits'
            ``argmax(-1)``, not the logits.
        gold: gold label ids, same length; entries ``< 0`` (unknown emotion, e.g. chat rows) are
            left out of both numerator and denominator.

    Returns:
        ``AverageMetric(correct, counted)``.
    """
    predicted = predicted.tolist() if hasattr(predicted, "tolist") else list(predicted)
    gold = gold.tolist() if hasattr(gold, "tolist") else list(gold)
    if len(predicted) != len(gold):
        raise ValueError(f"emotion_accuracy: {len(predicted)} predictions vs {len(gold)} labels")
    correct = counted = 0
    for p, g in zip(predicted, gold):
        if int(g) < 0:
            continue
        counted += 1
        correct += int(int(p) == int(g))
    return AverageMetric(correct, counted)


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple[Hashable, ...]]:
    """The n-grams of one token sequence, as tuples, in order (``[]`` when shorter than n)."""
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(corpus: Iterable[Sequence[Hashable]], n: int) -> float:
    """Corpus-level Distinct-n x 100: distinct n-grams over all n-grams of all responses.

    n-grams never cross response boundaries and are token tuples. A corpus without any n-gram
    (all responses shorter than n) scores 0.0.

    Example: ``[["a","b","a"], ["a","b"]]`` has bigrams (a,b) (b,a) (a,b): Distinct-2 = 2/3 x 100.
    """
    seen: set[tuple[Hashable, ...]] = set()
    total = 0
    for tokens in corpus:
        grams = ngrams(list(tokens), n)
        total += len(grams)
        seen.update(grams)
    return 100.0 * len(seen) / total if total else 0.0


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU with its parts (all BLEU values x 100).

    Attributes:
        bleu: ``{1: BLEU-1, ..., max_order: BLEU-max_order}``, each the brevity penalty times the
            geometric mean of the (possibly smoothed) precisions of orders ``1..n``.
        precisions: modified n-gram precision of each order (fractions, after smoothing).
        matches / possible: clipped matching n-grams and hypothesis n-grams per order.
        brevity_penalty: ``1`` if the hypotheses are longer than the references, else
            ``exp(1 - ref_length / hyp_length)`` (0 for empty hypotheses).
        hyp_length / ref_length: total tokens.
        smooth: whether orders >= 2 were add-one smoothed.
    """

    bleu: Mapping[int, float]
    precisions: tuple[float, ...]
    matches: tuple[int, ...]
    possible: tuple[int, ...]
    brevity_penalty: float
    hyp_length: int
    ref_length: int
    smooth: bool

    def as_dict(self) -> dict[str, float]:
        """``{"bleu_1": .., ..., "bleu_n": ..}`` for metrics files."""
        return {f"bleu_{n}": value for n, value in sorted(self.bleu.items())}


def corpus_bleu(
    hypotheses: Sequence[Sequence[Hashable]],
    references: Sequence[Sequence[Hashable]],
    *,
    max_order: int = 4,
    smooth: bool = False,
) -> BleuScore:
    """Corpus BLEU-1..``max_order`` of tokenised hypotheses against one reference each.

    Counts are clipped per sentence (a hypothesis n-gram matches at most as often as it occurs in
    its reference) and summed over the corpus before dividing; the brevity penalty uses total
    lengths. With ``smooth=True``, orders >= 2 use ``(matches + 1) / (possible + 1)`` (Lin & Och
    2004), which keeps small corpora without 4-gram matches from scoring 0.

    Raises:
        ValueError: different numbers of hypotheses and references, or ``max_order < 1``.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"corpus_bleu: {len(hypotheses)} hypotheses vs {len(references)} references"
        )
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    matches = [0] * max_order
    possible = [0] * max_order
    hyp_length = ref_length = 0
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = list(hyp), list(ref)
        hyp_length += len(hyp)
        ref_length += len(ref)
        for order in range(1, max_order + 1):
            hyp_counts = Counter(ngrams(hyp, order))
            ref_counts = Counter(ngrams(ref, order))
            matches[order - 1] += sum((hyp_counts & ref_counts).values())
            possible[order - 1] += max(len(hyp) - order + 1, 0)
    precisions = []
    for i in range(max_order):
        if smooth and i > 0:
            precisions.append((matches[i] + 1.0) / (possible[i] + 1.0))
        else:
            precisions.append(matches[i] / possible[i] if possible[i] else 0.0)
    if hyp_length == 0:
        brevity_penalty = 0.0
    elif hyp_length >= ref_length:
        brevity_penalty = 1.0
    else:
        brevity_penalty = math.exp(1.0 - ref_length / hyp_length)
    bleu: dict[int, float] = {}
    for n in range(1, max_order + 1):
        head = precisions[:n]
        if min(head) > 0:
            bleu[n] = 100.0 * brevity_penalty * math.exp(sum(math.log(p) for p in head) / n)
        else:
            bleu[n] = 0.0
    return BleuScore(
        bleu=bleu,
        precisions=tuple(precisions),
        matches=tuple(matches),
        possible=tuple(possible),
        brevity_penalty=brevity_penalty,
        hyp_length=hyp_length,
        ref_length=ref_length,
        smooth=smooth,
    )
