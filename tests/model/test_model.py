"""KEMP loss terms on cases computed by hand, the copy distribution, and the API shapes."""

from __future__ import annotations

import math

import pytest
import torch

from kemp_kg import schema
from kemp_model.config import ModelConfig, get_preset, tiny
from kemp_model.data import Batch
from kemp_model.loss import Loss, LossConfig
from kemp_model.model import KEMP, ConvFeedForward, emotional_attention_loss

V = 10


def one_example(target=(8, 9, 3), emotion=5) -> Batch:
    return Batch(
        context_ids=torch.tensor([[4, 8, 9]]),
        context_roles=torch.tensor([[0, 1, 1]]),
        context_intensity=torch.tensor([[0.0, 0.5, 1.0]]),
        context_mask=torch.ones(1, 3, dtype=torch.bool),
        concept_ids=torch.tensor([[9, 0]]),
        concept_anchor=torch.tensor([[1, 0]]),
        concept_relation=torch.zeros(1, 2, dtype=torch.long),
        concept_weight=torch.ones(1, 2),
        concept_intensity=torch.tensor([[0.25, 0.0]]),
        concept_mask=torch.tensor([[True, False]]),
        target=torch.tensor([list(target)]),
        emotion=torch.tensor([emotion]),
        rows=torch.tensor([0]),
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
    config = ModelConfig(
        embedding_dim=8, hidden_dim=8, num_heads=2, attention_dim=8, ffn_dim=8, dropout=0.0
    )
    model = KEMP(config, V).eval()
    loss = Loss(LossConfig(label_smoothing=smoothing), V)
    batch = one_example(target=(8, 9, 3, 0))  # 3 real tokens then padding
    # every reference token gets P = 0.5; the smoothing term of each token is 3.0
    fixed = (
        torch.full((3,), math.log(0.5)),
        torch.full((3,), 3.0) if smoothing else None,
        torch.zeros(1, 4, 5),
    )
    monkeypatch.setattr(model, "target_log_probs", lambda state, target, smoothing: fixed)
    out = model(batch, smoothing=loss.smoothing)
    nll = math.log(2.0)
    constant = (
        (1 - smoothing) * math.log(1 - smoothing) + smoothing * math.log(smoothing / (V - 2))
        if smoothing
        else 0.0
    )
    per_token = (1 - smoothing) * nll + smoothing * 3.0 + constant
    assert out.token_count.item() == 3
    assert out.generation_nll_sum.item() == pytest.approx(3 * nll, rel=1e-6)
    assert loss.generation_sum(out).item() == pytest.approx(3 * per_token, rel=1e-6)
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
    assert loss(out, out.token_count, out.example_count).item() == pytest.approx(total, rel=1e-5)


def label_smoothed_kl(log_probs: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """The official generation loss written out: KL(q || p) summed over non-PAD target rows, q
    = 1 - eps on the target, 0 on PAD, eps / (V - 2) elsewhere (MoEL's LabelSmoothing)."""
    vocab = log_probs.shape[-1]
    q = torch.full_like(log_probs, eps / (vocab - 2))
    q.scatter_(1, target[:, None], 1 - eps)
    q[:, schema.PAD_ID] = 0
    q[target == schema.PAD_ID] = 0
    return torch.where(q > 0, q * (q.log() - log_probs), torch.zeros_like(q)).sum()


@pytest.mark.parametrize("preset", ["kemp", "transformer", "kemp-small"])
def test_training_path_matches_the_full_distribution(preset) -> None:
    """The fast teacher-forced path (real target positions only) equals the full copy-mixed
    distribution over every position, and the smoothed loss equals the official label-smoothed
    KL divergence computed on that full distribution."""
    torch.manual_seed(3)
    model = KEMP(get_preset(preset).model, V).eval()
    batch = one_example(target=(9, 4, 8, 3, 0))
    state = model.encode(batch)
    prefix = torch.cat([torch.full((1, 1), schema.SOS_ID), batch.target[:, :-1]], dim=1)
    full, _ = model.decode(state, prefix)  # [1, T, V]
    gold = full.gather(2, batch.target[:, :, None]).squeeze(2)[batch.target != 0]
    for smoothing in (False, True):
        log_prob, smooth, _ = model.target_log_probs(state, batch.target, smoothing=smoothing)
        assert torch.allclose(log_prob, gold, atol=1e-5)
        assert (smooth is not None) == smoothing
    loss = Loss(LossConfig(label_smoothing=0.1), V)
    out = model(batch, smoothing=True)
    expected = label_smoothed_kl(full[0], batch.target[0], 0.1)
    assert loss.generation_sum(out).item() == pytest.approx(expected.item(), rel=1e-5)


def test_both_perplexities_by_hand_on_three_examples(monkeypatch) -> None:
    """Per-example (the paper's): exp(mean over examples of each example's mean token NLL);
    pooled: exp(total NLL / total tokens)."""
    import dataclasses

    from kemp_model.train import validation_metrics

    one = one_example()
    batch = Batch(
        **{f.name: torch.cat([getattr(one, f.name)] * 3) for f in dataclasses.fields(Batch)}
    )
    # example 0: 1 token, example 1: 2 tokens, example 2: 3 tokens
    batch.target = torch.tensor([[8, 0, 0], [8, 9, 0], [8, 9, 3]])
    model = KEMP(tiny().model, V).eval()
    nll = torch.tensor([1.0, 2.0, 4.0, 1.0, 1.0, 4.0])  # row-major over the 6 real tokens
    monkeypatch.setattr(
        model,
        "target_log_probs",
        lambda state, target, smoothing: (-nll, None, torch.zeros(3, 3, 5)),
    )
    out = model(batch)
    figures = validation_metrics(out, len(batch)).value()
    per_example = math.exp((1.0 / 1 + (2.0 + 4.0) / 2 + (1.0 + 1.0 + 4.0) / 3) / 3)
    pooled = math.exp((1.0 + 2.0 + 4.0 + 1.0 + 1.0 + 4.0) / 6)
    assert figures["ppl_per_example"] == pytest.approx(per_example, rel=1e-6)
    assert figures["ppl_pooled"] == pytest.approx(pooled, rel=1e-6)
    assert per_example != pytest.approx(pooled)


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


@pytest.mark.parametrize(
    "preset", ["kemp", "wo-ece", "wo-edd", "transformer", "kemp-small", "tiny"]
)
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


@pytest.mark.parametrize(
    "preset", ["kemp", "wo-ece", "wo-edd", "transformer", "kemp-small", "tiny"]
)
def test_every_parameter_gets_a_gradient(preset) -> None:
    """DDP needs it (no find_unused_parameters); only the baseline's unused emotion head is exempt."""
    torch.manual_seed(0)
    chosen = get_preset(preset)
    model = KEMP(chosen.model, V)
    out = model(one_example(), smoothing=True)
    Loss(chosen.loss, V)(out, out.token_count, out.example_count).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == (["emotion_head.weight"] if preset == "transformer" else [])


def test_baseline_without_emotion_head_counts_every_example() -> None:
    """The transformer's example count is the batch size (it once read a bool tensor as 1)."""
    import dataclasses

    torch.manual_seed(0)
    one = one_example()
    batch = Batch(
        **{f.name: torch.cat([getattr(one, f.name)] * 3) for f in dataclasses.fields(Batch)}
    )
    out = KEMP(get_preset("transformer").model, V)(batch)
    assert out.example_count.item() == len(batch)
    assert out.emotion_correct.item() <= len(batch)


# V-independent parameters of each preset, worked out in docs/DESIGN.md ("Presets"); the
# vocabulary adds 300 V (word table) + 301 V (untied output with bias) to the faithful ones.
FAITHFUL_FIXED = {"kemp": 670_483, "wo-ece": 621_463, "wo-edd": 480_281, "transformer": 759_920}


@pytest.mark.parametrize("preset", sorted(FAITHFUL_FIXED))
def test_faithful_presets_have_the_official_shapes_and_parameter_counts(preset) -> None:
    vocab = 1000
    model = KEMP(get_preset(preset).model, vocab)
    counts = model.parameter_counts()
    assert counts["word_table"] == 300 * vocab and model.embedding.weight.shape == (vocab, 300)
    assert counts["output"] == 301 * vocab and model.output.bias is not None  # untied, with bias
    assert counts["other"] == FAITHFUL_FIXED[preset], counts
    assert model.embed_scale == pytest.approx(300**0.5)
    layer = model.encoder_layers[0]
    assert isinstance(layer.ffn, ConvFeedForward) and layer.ffn.inner.kernel_size == (3,)
    assert layer.ffn.padding == (1, 1) and model.decoder_layers[0].ffn.padding == (2, 0)
    layers = (1, 1) if preset != "transformer" else (2, 2)
    assert (len(model.encoder_layers), len(model.decoder_layers)) == layers
    assert (model.copy_gate is None) == (preset == "transformer")


def test_xavier_init_leaves_the_word_table_small_and_pretrained_rows_unscaled() -> None:
    torch.manual_seed(0)
    model = KEMP(get_preset("kemp").model, 1000)
    table = model.embedding.weight
    assert table[schema.PAD_ID].abs().sum() == 0
    assert 0.005 < table[len(schema.SPECIAL_TOKENS) :].std().item() < 0.02
    # Xavier-uniform bound sqrt(6 / (fan_in + fan_out)) on a Linear(300 -> 40)
    query = model.decoder_layers[0].cross_attn.query.weight
    assert query.abs().max().item() <= (6 / 340) ** 0.5 + 1e-6
    vectors, present = torch.full((1000, 300), 0.7), torch.zeros(1000, dtype=torch.bool)
    present[10:20] = True
    model.load_vectors(vectors, present)
    assert torch.all(model.embedding.weight[10:20] == 0.7)  # copied as they are (no rescaling)


def test_conv_feed_forward_is_causal_in_the_decoder() -> None:
    torch.manual_seed(0)
    block = ConvFeedForward(8, 4, dropout=0.0, causal=True)
    x = torch.randn(1, 6, 8)
    changed = x.clone()
    changed[0, 4] += 1.0  # a later position must not change earlier outputs
    assert torch.allclose(block(x)[0, :4], block(changed)[0, :4])
    assert not torch.allclose(block(x)[0, 4:], block(changed)[0, 4:])
    both = ConvFeedForward(8, 4, dropout=0.0, causal=False)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    padded = x.clone()
    padded[0, 4:] = 100.0  # padded positions are zeroed before each convolution
    assert torch.allclose(both(x, mask)[0, :4], both(padded, mask)[0, :4])
