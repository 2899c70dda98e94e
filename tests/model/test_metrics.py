"""Mergeable metric values and the corpus metrics, on cases computed by hand."""

from __future__ import annotations

import math
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemp_model.metrics import (
    AverageMetric,
    Metrics,
    PerplexityMetric,
    SumMetric,
    corpus_bleu,
    distinct_n,
    emotion_accuracy,
    perplexity,
)

# ---------------------------------------------------------------- mergeable values


def test_average_merges_statistics_not_means() -> None:
    # 3/4 and 1/4 over 4 items each: the mean over all 8 items is 4/8.
    assert (AverageMetric(3, 4) + AverageMetric(1, 4)).value() == 0.5
    # unequal sizes: 1/1 and 0/3 -> 1/4, not the mean of 1.0 and 0.0
    assert (AverageMetric(1, 1) + AverageMetric(0, 3)).value() == 0.25


def test_sum_and_builtin_sum() -> None:
    assert sum([SumMetric(2), SumMetric(3), SumMetric(5)]).value() == 10
    assert math.isnan(AverageMetric(0, 0).value())


def test_different_classes_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        AverageMetric(1, 2) + PerplexityMetric(1, 2)


def test_perplexity_metric_merges_sums_then_exponentiates() -> None:
    # batch 1: 2 tokens of NLL ln 2 each; batch 2: 2 tokens of NLL ln 8 each.
    merged = PerplexityMetric(2 * math.log(2), 2) + PerplexityMetric(2 * math.log(8), 2)
    # mean NLL = (ln 2 + ln 8) / 2 = ln 4 -> ppl 4 (the mean of 2 and 8 would be 5)
    assert merged.value() == pytest.approx(4.0)


def test_metrics_mapping_merge_union_and_value() -> None:
    a = Metrics(acc=AverageMetric(1, 2), n=SumMetric(2))
    b = Metrics({"acc": AverageMetric(2, 2), "tokens": SumMetric(7)})
    merged = a + b
    assert merged.value() == {"acc": 0.75, "n": 2.0, "tokens": 7.0}
    assert a.value() == {"acc": 0.5, "n": 2.0}  # immutable: a unchanged
    assert sum([a, b]).value() == merged.value()
    with pytest.raises(ValueError, match="not a Metric"):
        Metrics(acc=0.5)  # type: ignore[arg-type]


def test_metrics_accept_tensors() -> None:
    torch = pytest.importorskip("torch")
    metric = AverageMetric(torch.tensor(3.0), torch.tensor(4))
    assert metric.value() == 0.75 and isinstance(metric.numer, float)


def test_all_reduce_without_distributed_is_identity() -> None:
    metrics = Metrics(acc=AverageMetric(1, 2))
    assert metrics.all_reduce() is metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, results: dict) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        items = {
            "acc": AverageMetric(rank + 1, 2),  # rank 0: 1/2, rank 1: 2/2
            "ppl": PerplexityMetric(math.log(2) if rank == 0 else math.log(8), 1),
            "n": SumMetric(10 * (rank + 1)),
        }
        results[rank] = Metrics(items).all_reduce().value()
        if rank == 1:
            items["extra"] = SumMetric(1)
        try:
            Metrics(items).all_reduce()
            results[f"mismatch{rank}"] = "no error"
        except ValueError as exc:
            results[f"mismatch{rank}"] = str(exc)
    finally:
        dist.destroy_process_group()


def test_all_reduce_over_two_gloo_ranks() -> None:
    mp = pytest.importorskip("torch.multiprocessing")
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_rank_main, args=(_free_port(), results), nprocs=2, join=True)
    for rank in (0, 1):
        assert results[rank]["acc"] == pytest.approx(0.75)
        assert results[rank]["ppl"] == pytest.approx(4.0)
        assert results[rank]["n"] == 30.0
        # different names on the ranks: every rank refuses instead of mixing values
        assert "different metric names" in results[f"mismatch{rank}"]


# ---------------------------------------------------------------- corpus metrics


def test_perplexity() -> None:
    assert perplexity(3 * math.log(5), 3) == pytest.approx(5.0)
    assert perplexity(0.0, 10) == 1.0
    with pytest.raises(ValueError, match="token_count"):
        perplexity(1.0, 0)


def test_emotion_accuracy_skips_unknown_labels() -> None:
    metric = emotion_accuracy([1, 2, 3, 4], [1, 0, 3, -1])
    assert (metric.numer, metric.denom) == (2.0, 3.0)
    with pytest.raises(ValueError, match="3 predictions vs 2 labels"):
        emotion_accuracy([1, 2, 3], [1, 2])


def test_distinct_by_hand() -> None:
    corpus = [["a", "b", "a"], ["a", "b"]]
    assert distinct_n(corpus, 1) == pytest.approx(100 * 2 / 5)
    # bigrams (a,b) (b,a) | (a,b): 2 distinct of 3; none across the response boundary
    assert distinct_n(corpus, 2) == pytest.approx(100 * 2 / 3)
    assert distinct_n([["x"]], 2) == 0.0
    assert distinct_n([], 1) == 0.0


def test_distinct_bigrams_are_token_pairs_not_joined_strings() -> None:
    # the official scorer joins bigrams ("a"+"bc" == "ab"+"c"); token pairs keep them apart
    assert distinct_n([["a", "bc"], ["ab", "c"]], 2) == 100.0


def test_bleu_by_hand() -> None:
    hyp = "the cat sat on the mat".split()
    ref = "the cat is on the mat".split()
    score = corpus_bleu([hyp], [ref])
    # matches: unigrams 5/6, bigrams 3/5, trigrams 1/4, 4-grams 0/3; equal lengths -> BP 1
    assert score.matches == (5, 3, 1, 0) and score.possible == (6, 5, 4, 3)
    assert score.brevity_penalty == 1.0
    assert score.bleu[1] == pytest.approx(100 * 5 / 6)
    assert score.bleu[2] == pytest.approx(100 * math.sqrt(0.5))
    assert score.bleu[3] == pytest.approx(50.0)
    assert score.bleu[4] == 0.0
    smoothed = corpus_bleu([hyp], [ref], smooth=True)
    # orders >= 2 add one: 4/6, 2/5, 1/4
    assert smoothed.bleu[1] == pytest.approx(100 * 5 / 6)
    assert smoothed.bleu[4] == pytest.approx(100 * (5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25)
    assert smoothed.as_dict()["bleu_4"] == smoothed.bleu[4]


def test_bleu_clipping_and_brevity_penalty() -> None:
    assert corpus_bleu([["the"] * 3], [["the", "cat", "x"]]).bleu[1] == pytest.approx(100 / 3)
    short = corpus_bleu([["the", "cat"]], [["the", "cat", "sat", "on"]], max_order=1)
    assert short.brevity_penalty == pytest.approx(math.exp(-1))
    assert short.bleu[1] == pytest.approx(100 * math.exp(-1))
    assert corpus_bleu([[]], [["a"]]).bleu[1] == 0.0
    with pytest.raises(ValueError, match="2 hypotheses vs 1"):
        corpus_bleu([["a"], ["b"]], [["a"]])


def test_bleu_is_corpus_level_not_sentence_mean() -> None:
    # sentence 1: 1/1 unigram match; sentence 2: 0/3 -> corpus 1/4 (mean of sentences = 1/2)
    score = corpus_bleu([["a"], ["x", "y", "z"]], [["a"], ["b", "c", "d"]], max_order=1)
    assert score.precisions[0] == pytest.approx(0.25)


tokens = st.lists(st.sampled_from("abcde"), min_size=1, max_size=8)
# nltk counts a hypothesis without any bigram as one possible bigram (denominator max(1, 0));
# we (and the official KEMP scorer) count zero, so compare on hypotheses of >= 2 tokens.
long_tokens = st.lists(st.sampled_from("abcde"), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(long_tokens, tokens), min_size=1, max_size=6))
def test_bleu_matches_nltk(pairs: list[tuple[list[str], list[str]]]) -> None:
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    hyps = [h for h, _ in pairs]
    refs = [r for _, r in pairs]
    ours = corpus_bleu(hyps, refs, max_order=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, weights in ((1, (1.0,)), (2, (0.5, 0.5))):
            theirs = bleu_score.corpus_bleu([[r] for r in refs], hyps, weights=weights)
            assert ours.bleu[n] == pytest.approx(100 * theirs, abs=1e-9)
