"""KEMP loss terms on cases computed by hand, the copy distribution, and the API shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kemp_kg import schema
from kemp_model.config import ModelConfig, get_preset, tiny
from kemp_model.data import Batch
from kemp_model.model import KEMP, emotional_attention_loss

V = 10


def one_example(target=(8, 9, 3), emotion=5) -> Batch:
    return Batch(
        context_ids=torch.tensor([[4, 8, 9]]), context_roles=torch.tensor([[0, 1, 1]]),
        context_intensity=torch.tensor([[0.0, 0.5, 1.0]]),
        context_mask=torch.ones(1, 3, dtype=torch.bool),
        concept_ids=torch.tensor([[9, 0]]), concept_anchor=torch.tensor([[1, 0]]),
        concept_relation=torch.zeros(1, 2, dtype=torch.long),
        concept_weight=torch.ones(1, 2), concept_intensity=torch.tensor([[0.25, 0.0]]),
        concept_mask=torch.tensor([[True, False]]),
        target=torch.tensor([list(target)]), emotion=torch.tensor([emotion]), rows=torch.tensor([0]),
    )


def test_emotional_attention_loss_by_hand() -> None:
    # one example, 2 target steps (+1 padding), 3 vertices (+1 padding)
    weights = torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.7, 0.0], [1.0, 0.0, 0.0, 0.0]]])
    tokens = torch.tensor([[True, True, False]])
    intensity = torch.tensor([[0.0, 0.0, math.log(2.0), 5.0]])
    mask = torch.tensor([[True, True, True, False]])
    # mean attention over real steps: [0.3, 0.35, 0.35]; softmax(eta) over real: [.25, .25, .5]
    expected = ((0.3 - 0.25) ** 2 + (0.35 - 0.25) ** 2 + (0.35 - 0.5) ** 2) / 3
    got = emotional_attention_loss(weights, tokens, intensity, mask)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_generation_and_emotion_losses_by_hand(monkeypatch, smoothing) -> None:
    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=8, hidden_dim=8, num_heads=2, attention_dim=8, ffn_dim=8,
                         dropout=0.0, label_smoothing=smoothing)
    model = KEMP(config, V).eval()
    batch = one_example(target=(8, 9, 3, 0))  # 3 real tokens then padding
    # every reference token gets P = 0.5; the generator's cross-entropy with uniform is 3.0
    fixed = (torch.full((3,), math.log(0.5)), torch.full((3,), 3.0), torch.zeros(1, 4, 5))
    monkeypatch.setattr(model, "target_log_probs", lambda state, target: fixed)
    out = model(batch)
    nll = math.log(2.0)
    per_token = (1 - smoothing) * nll + smoothing * 3.0
    assert out.token_count.item() == 3
    assert out.generation_nll_sum.item() == pytest.approx(3 * nll, rel=1e-6)
    assert out.generation_loss_sum.item() == pytest.approx(3 * per_token, rel=1e-6)
    logits = model.encode(batch).emotion_logits[0].tolist()
    emo = math.log(sum(math.exp(v) for v in logits)) - logits[5]
    assert out.emotion_nll_sum.item() == pytest.approx(emo, rel=1e-5)
    # attention weights are all zero here, so Eq. 16 is the mean of softmax(eta)^2 over real vertices
    eta = [0.0, 0.5, 1.0, 0.25]
    soft = [math.exp(v) / sum(math.exp(u) for u in eta) for v in eta]
    att = sum(x * x for x in soft) / 4
    assert out.attention_loss_sum.item() == pytest.approx(att, rel=1e-5)
    # Eq. 21, gamma = (1, 1, 0.1), combined as the official code: sums over tokens and examples,
    # divided by the token count
    total = (1.0 * 3 * per_token + 1.0 * emo + 0.1 * att) / 3
    assert out.loss.item() == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize("preset", ["kemp", "transformer"])
def test_training_path_matches_the_full_distribution(preset) -> None:
    """The fast teacher-forced path (gold tokens only) equals the full copy-mixed distribution."""
    torch.manual_seed(3)
    model = KEMP(get_preset(preset).model, V).eval()
    batch = one_example(target=(9, 4, 8, 3, 0))
    state = model.encode(batch)
    log_prob, uniform_ce, _ = model.target_log_probs(state, batch.target)
    prefix = torch.cat([torch.full((1, 1), schema.SOS_ID), batch.target[:, :-1]], dim=1)
    full, _ = model.decode(state, prefix)  # [1, T, V]
    gold = full.gather(2, batch.target[:, :, None]).squeeze(2)[batch.target != 0]
    assert torch.allclose(log_prob, gold, atol=1e-5)
    y, _ = model.decoder_states(state, prefix)
    expected_ce = -F.log_softmax(model.vocab_logits(y), dim=-1).mean(-1)[batch.target != 0]
    assert torch.allclose(uniform_ce, expected_ce, atol=1e-5)


@pytest.mark.parametrize("preset", ["kemp", "transformer"])
def test_decode_step_equals_the_last_position_of_the_full_decode(preset) -> None:
    torch.manual_seed(4)
    model = KEMP(get_preset(preset).model, V).eval()
    batch = one_example(target=(9, 4, 8, 3, 0))
    state = model.encode(batch)
    prefix = torch.cat([torch.full((1, 1), schema.SOS_ID), batch.target[:, :3]], dim=1)
    full, _ = model.decode(state, prefix)  # [1, 4, V]
    step = model.decode_step(state, prefix)  # [1, V]
    assert step.shape == (1, V)
    assert torch.allclose(step, full[:, -1], atol=1e-6)


def test_unlabelled_examples_add_no_emotion_loss() -> None:
    model = KEMP(tiny().model, V).eval()
    out = model(one_example(emotion=schema.UNKNOWN_EMOTION))
    assert out.emotion_nll_sum.item() == 0.0 and out.example_count.item() == 0


@pytest.mark.parametrize("preset", ["kemp", "wo-ece", "wo-edd", "transformer", "tiny"])
def test_copy_distribution_sums_to_one(preset) -> None:
    torch.manual_seed(0)
    model = KEMP(get_preset(preset).model, V).eval()
    batch = one_example()
    state = model.encode(batch)
    prefix = torch.tensor([[schema.SOS_ID, 8, 9]])
    log_probs = model.decode_step(state, prefix)
    assert log_probs.shape == (1, V)
    assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_copy_only_puts_mass_on_graph_vertices() -> None:
    torch.manual_seed(0)
    model = KEMP(tiny().model, V).eval()
    with torch.no_grad():
        model.copy_gate.bias.fill_(-60.0)  # p_gen ~ 0: all mass from copying
        model.copy_gate.weight.zero_()
    batch = one_example()
    probs = model.decode_step(model.encode(batch), torch.tensor([[schema.SOS_ID]])).exp()[0]
    on_graph = {4, 8, 9}  # CLS, words and the one real concept (9); the padding concept is masked
    assert probs[sorted(on_graph)].sum().item() == pytest.approx(1.0, abs=1e-5)


def test_encoder_state_index_select_expands_rows() -> None:
    model = KEMP(tiny().model, V).eval()
    state = model.encode(one_example())
    expanded = state.index_select(torch.tensor([0, 0, 0]))
    assert len(expanded) == 3 and expanded.memory.shape[0] == 3
    prefix = torch.tensor([[schema.SOS_ID, 8]] * 3)
    out = model.decode_step(expanded, prefix)
    assert torch.allclose(out[0], out[2])


def test_config_checks_name_the_values() -> None:
    with pytest.raises(ValueError, match="attention_dim=10"):
        ModelConfig(attention_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        get_preset("nope")


@pytest.mark.parametrize("preset", ["kemp", "wo-ece", "wo-edd", "transformer", "tiny"])
def test_every_parameter_gets_a_gradient(preset) -> None:
    """DDP needs it (no find_unused_parameters); only the baseline's unused emotion head is exempt."""
    torch.manual_seed(0)
    model = KEMP(get_preset(preset).model, V)
    model(one_example()).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == (["emotion_head.weight"] if preset == "transformer" else [])


def test_loss_terms_combine_as_the_official_code_or_as_sum_or_mean() -> None:
    from kemp_model.model import ModelOutput

    def output(reduction: str) -> ModelOutput:
        return ModelOutput(
            generation_loss_sum=torch.tensor(6.0), generation_nll_sum=torch.tensor(6.0),
            emotion_nll_sum=torch.tensor(8.0), attention_loss_sum=torch.tensor(2.0),
            token_count=torch.tensor(3), example_count=torch.tensor(4),
            emotion_correct=torch.tensor(0), emotion_logits=torch.zeros(4, 32),
            weights=(1.0, 1.0, 0.1), emotion_reduction=reduction,
        )

    # official: (summed token loss + summed emotion NLL + 0.1 x mean attention loss) / tokens
    assert output("official").loss.item() == pytest.approx((6 + 8 + 0.1 * 2 / 4) / 3)
    assert output("sum").loss.item() == pytest.approx(6 / 3 + 8 + 0.1 * 2 / 4)
    assert output("mean").loss.item() == pytest.approx(6 / 3 + 8 / 4 + 0.1 * 2 / 4)
    assert ModelConfig().emotion_loss_reduction == "official"
    with pytest.raises(ValueError, match="emotion_loss_reduction"):
        ModelConfig(emotion_loss_reduction="max")


def test_baseline_without_emotion_head_counts_every_example() -> None:
    """The transformer's example count is the batch size (it once read a bool tensor as 1)."""
    import dataclasses

    torch.manual_seed(0)
    one = one_example()
    batch = Batch(**{f.name: torch.cat([getattr(one, f.name)] * 3) for f in dataclasses.fields(Batch)})
    out = KEMP(get_preset("transformer").model, V)(batch)
    assert out.example_count.item() == len(batch)
    assert out.emotion_correct.item() <= len(batch)
