"""Graph attention (Eq. 3-4) and the batch adjacency on a hand-built four-vertex graph."""

from __future__ import annotations

import torch

from kemp_model.config import tiny
from kemp_model.data import Batch
from kemp_model.graph_attention import GraphAttention, build_adjacency
from kemp_model.model import KEMP


def four_vertex_inputs():
    """Example 0: CLS, w1, w2 and one concept on w1 (4 vertices) + one padding word slot.
    Example 1: CLS, w1, w2, w3 and no concept (padding concept slot)."""
    word_mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    anchor = torch.tensor([[1], [0]])
    concept_mask = torch.tensor([[True], [False]])
    return word_mask, anchor, concept_mask


def test_adjacency_matches_the_three_edge_types() -> None:
    adj = build_adjacency(*four_vertex_inputs())
    # vertices of example 0: 0=CLS 1=w1 2=w2 3=pad word 4=concept on w1
    edges0 = {(0, 1), (0, 2), (0, 4), (1, 2), (1, 4)}
    expected0 = torch.zeros(5, 5, dtype=torch.bool)
    for u, v in edges0:
        expected0[u, v] = expected0[v, u] = True
    assert torch.equal(adj[0], expected0)
    edges1 = {(0, 1), (0, 2), (0, 3), (1, 2), (2, 3)}
    expected1 = torch.zeros(5, 5, dtype=torch.bool)
    for u, v in edges1:
        expected1[u, v] = expected1[v, u] = True
    assert torch.equal(adj[1], expected1)


def test_attention_sums_to_one_over_neighbours_and_is_zero_elsewhere() -> None:
    torch.manual_seed(0)
    word_mask, anchor, concept_mask = four_vertex_inputs()
    adj = build_adjacency(word_mask, anchor, concept_mask)
    layer = GraphAttention(hidden_dim=8, num_heads=2, attention_dim=8).eval()
    x = torch.randn(2, 5, 8)
    out, weights = layer(x, adj, return_attention=True)
    assert out.shape == (2, 5, 8) and weights.shape == (2, 2, 5, 5)
    has_neighbour = adj.any(-1)  # [B, N]
    sums = weights.sum(-1)  # [B, H, N]
    assert torch.allclose(sums[has_neighbour[:, None, :].expand_as(sums)], torch.ones(()))
    assert torch.all(weights[~adj[:, None].expand_as(weights)] == 0)
    assert torch.all(weights[0, :, 3] == 0)  # padding word: no weight from/to it
    assert torch.all(weights[0, :, :, 3] == 0)
    assert torch.all(weights[1, :, :, 4] == 0)  # padding concept


def test_padding_does_not_change_real_vertices() -> None:
    torch.manual_seed(1)
    layer = GraphAttention(hidden_dim=8, num_heads=2).eval()
    word_mask, anchor, concept_mask = four_vertex_inputs()
    x = torch.randn(1, 5, 8)
    out = layer(x, build_adjacency(word_mask[:1], anchor[:1], concept_mask[:1]))
    x_noisy = x.clone()
    x_noisy[0, 3] = 100.0  # garbage in the padding slot
    out_noisy = layer(x_noisy, build_adjacency(word_mask[:1], anchor[:1], concept_mask[:1]))
    keep = [0, 1, 2, 4]
    assert torch.allclose(out[0, keep], out_noisy[0, keep], atol=1e-6)


def _batch(concept_order: list[int]) -> Batch:
    ids = torch.tensor([[4, 10, 11, 12]])
    concepts = torch.tensor([[13, 14, 15]])[:, concept_order]
    anchors = torch.tensor([[1, 3, 3]])[:, concept_order]
    c_int = torch.tensor([[0.9, 0.1, 0.5]])[:, concept_order]
    return Batch(
        context_ids=ids,
        context_roles=torch.tensor([[0, 1, 1, 2]]),
        context_intensity=torch.tensor([[0.0, 0.3, 0.8, 0.2]]),
        context_mask=torch.ones(1, 4, dtype=torch.bool),
        concept_ids=concepts,
        concept_anchor=anchors,
        concept_relation=torch.zeros(1, 3, dtype=torch.long),
        concept_weight=torch.ones(1, 3),
        concept_intensity=c_int,
        concept_mask=torch.ones(1, 3, dtype=torch.bool),
        target=torch.tensor([[10, 13, 3]]),
        emotion=torch.tensor([5]),
        rows=torch.tensor([0]),
    )


def test_concept_order_does_not_change_the_result() -> None:
    torch.manual_seed(2)
    model = KEMP(tiny().model, vocab_size=20).eval()
    a, b = _batch([0, 1, 2]), _batch([2, 0, 1])
    with torch.no_grad():
        sa, sb = model.encode(a), model.encode(b)
        assert torch.allclose(sa.emotion_logits, sb.emotion_logits, atol=1e-5)
        assert torch.allclose(sa.memory[:, :4], sb.memory[:, :4], atol=1e-5)
        prefix = torch.tensor([[2, 10, 13]])
        assert torch.allclose(
            model.decode_step(sa, prefix), model.decode_step(sb, prefix), atol=1e-5
        )
        assert torch.allclose(model(a).generation_nll_sum, model(b).generation_nll_sum, atol=1e-5)
