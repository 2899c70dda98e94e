"""Decoding with mock models whose next-token distributions are tables we choose by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from kemp_kg.schema import CLS_ID, EOS_ID, KNOWLEDGE_ID, LISTENER_ID, SOS_ID, SPEAKER_ID, UNK_ID
from kemp_model.decoding import (
    DECODE_PRESETS,
    DecodeConfig,
    banned_tokens,
    decode_preset,
    generate,
    select_paths,
)

V = 20  # vocabulary of the mock models (ids 0..7 are the special tokens)


@dataclass
class MockState:
    rows: torch.Tensor  # [B] which table row (example) each hypothesis belongs to

    def index_select(self, index: torch.Tensor) -> MockState:
        return MockState(self.rows.index_select(0, index))


class TableModel:
    """Next-token log-probs = log_softmax(logits[example, last token]) (a per-example bigram LM).

    The batch is a LongTensor of example ids, so a sub-batch decodes a subset of the examples.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits  # [E, V, V]
        self.calls: list[int] = []

    def encode(self, batch: torch.Tensor) -> MockState:
        return MockState(batch.clone())

    def decode_step(self, state: MockState, prefix: torch.Tensor) -> torch.Tensor:
        assert prefix[:, 0].eq(SOS_ID).all()
        self.calls.append(prefix.shape[0])
        return torch.log_softmax(self.logits[state.rows, prefix[:, -1]], dim=-1)


def random_model(examples: int = 4, seed: int = 0, eos_bias: float = 0.0) -> TableModel:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(examples, V, V, generator=gen) * 3
    logits[..., EOS_ID] += eos_bias
    return TableModel(logits)


def chain_model(chains: list[dict[int, dict[int, float]]]) -> TableModel:
    """Per example, {previous token: {next token: probability}}; unlisted mass is tiny."""
    logits = torch.full((len(chains), V, V), -30.0)
    for e, table in enumerate(chains):
        for prev, nexts in table.items():
            for token, p in nexts.items():
                logits[e, prev, token] = math.log(p)
    return TableModel(logits)


def batch(n: int) -> torch.Tensor:
    return torch.arange(n)


# ------------------------------------------------------------------ config and presets


def test_config_checks_name_the_values() -> None:
    with pytest.raises(ValueError, match="strategy .* 'sample'"):
        DecodeConfig(strategy="sample")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_p .* 1.5"):
        DecodeConfig(top_p=1.5)
    with pytest.raises(ValueError, match="max_len .* 0"):
        DecodeConfig(max_len=0)
    with pytest.raises(ValueError, match="unknown decoding preset 'nope'"):
        decode_preset("nope")


def test_presets() -> None:
    assert set(DECODE_PRESETS) == {"greedy", "beam", "topk", "topp", "diverse"}
    assert decode_preset("greedy").max_len == 30
    diverse = decode_preset("diverse", seed=3, max_len=None)
    assert (diverse.strategy, diverse.seed, diverse.max_len) == ("topp", 3, 30)
    assert decode_preset("beam").width == 5 and decode_preset("topk").width == 1
    assert decode_preset("beam").to_dict()["beam_size"] == 5


def test_banned_tokens() -> None:
    assert banned_tokens([5, 6, 7, 5], 2) == {6}
    assert banned_tokens([5, 6, 7, 5, 6], 3) == {7}
    assert banned_tokens([5, 6, 7], 3) == set()
    assert banned_tokens([5, 6], 1) == {5, 6}
    assert banned_tokens([], 2) == set()


# ------------------------------------------------------------------ select_paths


def test_select_paths_beam_takes_best_over_all_hypotheses() -> None:
    logprobs = torch.log(
        torch.tensor([[[0.1, 0.9, 0.0], [0.6, 0.4, 0.0]]]).clamp_min(1e-9)
    )  # [1, 2, 3]
    prior = torch.log(torch.tensor([[0.5, 0.5]]))
    hyp, tok, scores = select_paths(DecodeConfig(strategy="beam", beam_size=2), logprobs, prior)
    assert hyp.tolist() == [[0, 1]] and tok.tolist() == [[1, 0]]
    assert scores.exp().tolist()[0] == pytest.approx([0.45, 0.30])


# ------------------------------------------------------------------ the search


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("blocking", [0, 2])
def test_beam_of_one_equals_greedy(seed: int, blocking: int) -> None:
    model = random_model(examples=6, seed=seed, eos_bias=1.0)
    greedy = generate(model, batch(6), DecodeConfig(strategy="greedy", no_repeat_ngram=blocking))
    beam = generate(
        model, batch(6), DecodeConfig(strategy="beam", beam_size=1, no_repeat_ngram=blocking)
    )
    assert beam == greedy
    assert any(len(r) > 1 for r in greedy)  # a real sequence, not just EOS


@pytest.mark.parametrize("preset", ["greedy", "beam", "topk", "topp", "diverse"])
def test_max_len_respected(preset: str) -> None:
    model = random_model(examples=3, eos_bias=-1e4)  # EOS never wins
    out = generate(model, batch(3), decode_preset(preset, max_len=7))
    assert [len(r) for r in out] == [7, 7, 7]
    assert all(EOS_ID not in r and SOS_ID not in r for r in out)


def test_eos_ends_each_row_and_is_not_returned() -> None:
    model = chain_model(
        [
            {SOS_ID: {9: 0.9}, 9: {10: 0.9}, 10: {EOS_ID: 0.9}},
            {SOS_ID: {11: 0.9}, 11: {EOS_ID: 0.9}},
        ]
    )
    for preset in ("greedy", "beam", "topk", "topp"):
        assert generate(model, batch(2), decode_preset(preset)) == [[9, 10], [11]], preset


def test_finished_rows_leave_the_batch() -> None:
    model = chain_model(
        [
            {SOS_ID: {9: 0.9}, 9: {10: 0.9}, 10: {9: 0.9}},  # never ends
            {SOS_ID: {11: 0.9}, 11: {EOS_ID: 0.9}},  # ends after 2 steps
        ]
    )
    out = generate(model, batch(2), DecodeConfig(max_len=5))
    assert out == [[9, 10, 9, 10, 9], [11]]
    assert model.calls == [2, 2, 1, 1, 1]


def test_min_len_blocks_early_eos() -> None:
    model = chain_model([{SOS_ID: {EOS_ID: 0.9, 12: 0.05}, 12: {EOS_ID: 0.9}}])
    assert generate(model, batch(1), DecodeConfig(min_len=0)) == [[]]
    assert generate(model, batch(1), DecodeConfig(min_len=1)) == [[12]]


def test_beam_finds_the_better_sequence_greedy_misses() -> None:
    after_9 = {t: 1 / 12 for t in range(8, 20)}  # 9 leads nowhere likely
    model = chain_model(
        [
            {
                SOS_ID: {9: 0.5, 10: 0.4},
                9: after_9,
                10: {EOS_ID: 0.9},
                **{t: {EOS_ID: 0.9} for t in range(8, 20) if t not in (9, 10)},
            }
        ]
    )
    greedy = generate(model, batch(1), DecodeConfig(strategy="greedy"))[0]
    beam = generate(model, batch(1), DecodeConfig(strategy="beam", beam_size=2))[0]
    assert greedy[0] == 9 and len(greedy) == 2
    assert beam == [10]  # 0.4 * 0.9 = 0.36 > 0.5 * (1/12) * 0.9


def test_length_penalty_favours_longer_hypotheses() -> None:
    model = chain_model([{SOS_ID: {EOS_ID: 0.5, 12: 0.45}, 12: {EOS_ID: 0.99}}])
    plain = DecodeConfig(strategy="beam", beam_size=2, min_len=0)
    assert generate(model, batch(1), plain) == [[]]  # log 0.5 > log(0.45 * 0.99)
    # alpha = 1: -0.693 / (5/6) = -0.832 < -0.8085 / 1
    longer = DecodeConfig(strategy="beam", beam_size=2, min_len=0, length_penalty=1.0)
    assert generate(model, batch(1), longer) == [[12]]


@pytest.mark.parametrize("preset", ["greedy", "beam"])
def test_rows_do_not_depend_on_their_batch(preset: str) -> None:
    model = random_model(examples=5, seed=7, eos_bias=1.5)
    together = generate(model, batch(5), decode_preset(preset))
    alone = [generate(model, torch.tensor([i]), decode_preset(preset))[0] for i in range(5)]
    assert together == alone


def test_ngram_blocking_blocks() -> None:
    loop = {SOS_ID: {9: 0.9}, 9: {10: 0.6, 11: 0.3}, 10: {9: 0.6, 12: 0.3}, 11: {9: 0.5, 12: 0.4}}
    loop.update({12: {9: 0.5, 13: 0.4}, 13: {9: 0.5, 14: 0.4}, 14: {9: 0.5, EOS_ID: 0.4}})
    model = chain_model([loop])
    free = generate(model, batch(1), DecodeConfig(max_len=8))[0]
    assert free == [9, 10] * 4  # the unblocked model loops
    for n in (1, 2, 3):
        for preset in ("greedy", "beam", "topk"):
            out = generate(model, batch(1), decode_preset(preset, no_repeat_ngram=n, max_len=8))
            grams = [tuple(out[0][i : i + n]) for i in range(len(out[0]) - n + 1)]
            assert len(grams) == len(set(grams)), (preset, n, out)


@pytest.mark.parametrize("strategy", ["topk", "topp"])
def test_sampling_is_deterministic_given_the_seed(strategy: str) -> None:
    model = random_model(examples=8, seed=1, eos_bias=-2.0)
    config = DecodeConfig(strategy=strategy, top_k=8, top_p=0.95, seed=11, max_len=10)
    first = generate(model, batch(8), config)
    assert generate(model, batch(8), config) == first
    other = generate(
        model, batch(8), DecodeConfig(strategy=strategy, top_k=8, top_p=0.95, seed=12, max_len=10)
    )
    assert other != first


def test_narrow_sampling_equals_greedy() -> None:
    model = random_model(examples=6, seed=3, eos_bias=1.0)
    greedy = generate(model, batch(6), DecodeConfig())
    assert generate(model, batch(6), DecodeConfig(strategy="topk", top_k=1)) == greedy
    assert generate(model, batch(6), DecodeConfig(strategy="topp", top_p=1e-6)) == greedy


def test_top_k_samples_only_among_the_k_best() -> None:
    # from SOS: tokens 9, 10 likely, 11..19 unlikely but not negligible; top_k=2 never picks them
    table = {SOS_ID: {9: 0.3, 10: 0.2, **{t: 0.05 for t in range(11, 20)}}}
    table.update({t: {EOS_ID: 0.99} for t in range(9, 20)})
    model = chain_model([table] * 64)
    out = generate(model, batch(64), DecodeConfig(strategy="topk", top_k=2, seed=0))
    firsts = {r[0] for r in out}
    assert firsts == {9, 10}
    wide = generate(model, batch(64), DecodeConfig(strategy="topk", top_k=11, seed=0))
    assert {r[0] for r in wide} - {9, 10}


def test_generate_restores_training_mode() -> None:
    class Flagged(TableModel):
        training = True

        def eval(self) -> None:
            self.training = False

        def train(self) -> None:
            self.training = True

    model = Flagged(random_model().logits)
    generate(model, batch(2), DecodeConfig(max_len=3))
    assert model.training is True


def test_unk_is_blocked_unless_allowed() -> None:
    table = {SOS_ID: {UNK_ID: 0.9, 12: 0.05}, UNK_ID: {EOS_ID: 0.9}, 12: {EOS_ID: 0.9}}
    model = chain_model([table])
    assert generate(model, batch(1), DecodeConfig()) == [[12]]
    assert generate(model, batch(1), DecodeConfig(block_unk=False)) == [[UNK_ID]]


@pytest.mark.parametrize("preset", ["greedy", "beam", "topk"])
def test_structure_tokens_are_never_generated(preset: str) -> None:
    """A model that prefers <cls>, <speaker>, <listener>, <knowledge> still answers in words
    (a chat reply once read "<cls> <cls> ...")."""
    structure = [CLS_ID, SPEAKER_ID, LISTENER_ID, KNOWLEDGE_ID]
    nexts = {t: 0.2 for t in structure} | {12: 0.01, EOS_ID: 0.01}
    table = {SOS_ID: nexts, 12: {EOS_ID: 0.9}, **{t: {EOS_ID: 0.9} for t in structure}}
    out = generate(chain_model([table]), batch(1), decode_preset(preset, seed=0))
    assert out == [[12]]
