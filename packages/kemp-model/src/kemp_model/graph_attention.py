"""Multi-head graph attention over the emotional context graph (KEMP Eq. 3-4).

Also builds the graph's adjacency for a padded batch, vectorised (no Python loop over edges),
from the same rules as :func:`kemp_kg.schema.edge_lists`: temporary edges between successive
history words, emotion edges between a concept and the word it hangs off, and globality edges
between CLS and every other vertex. Vertex numbering in a padded batch: word vertices
``0..W-1``, then concept vertices ``W..W+C-1``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def build_adjacency(
    word_mask: torch.Tensor, concept_anchor: torch.Tensor, concept_mask: torch.Tensor
) -> torch.Tensor:
    """Symmetric adjacency (no self-loops) of each example's emotional context graph.

    Args:
        word_mask: ``[B, W]`` bool, True on real word positions (position 0 is CLS).
        concept_anchor: ``[B, C]`` long, the word position each concept hangs off (>= 1).
        concept_mask: ``[B, C]`` bool, True on real concepts.

    Returns:
        ``[B, N, N]`` bool with ``N = W + C``; ``adj[b, i, j]`` is True when vertices ``i`` and
        ``j`` share an edge. Padding vertices have no edges.
    """
    batch, words = word_mask.shape
    concepts = concept_mask.shape[1]
    total = words + concepts
    device = word_mask.device
    vertex_mask = torch.cat([word_mask, concept_mask], dim=1)  # [B, N]
    adj = torch.zeros(batch, total, total, dtype=torch.bool, device=device)
    # temporary edges: (i, i+1) for 1 <= i and i+1 a real word
    if words > 2:
        succ = word_mask[:, 2:].clone()  # [B, W-2]: word i+1 exists for i = 1..W-2
        idx = torch.arange(1, words - 1, device=device)
        adj[:, idx, idx + 1] = succ
    # emotion edges: anchor <-> concept vertex W + j
    if concepts:
        rows = torch.arange(batch, device=device)[:, None].expand(batch, concepts)
        cols = words + torch.arange(concepts, device=device)[None, :].expand(batch, concepts)
        anchor = concept_anchor.clamp(0, words - 1)
        adj[rows, anchor, cols] = concept_mask
    # globality edges: CLS <-> every other real vertex
    adj[:, 0, 1:] = vertex_mask[:, 1:] & vertex_mask[:, :1]
    adj = adj | adj.transpose(1, 2)
    return adj


class GraphAttention(nn.Module):
    r"""Multi-head attention restricted to graph neighbours, with a residual and LayerNorm.

    .. math::
        \alpha^n_{ij} = \frac{\exp\big((W^n_q v_i)^\top (W^n_k v_j) / \sqrt{d}\big)}
                             {\sum_{k \in \mathcal{A}_i} \exp\big((W^n_q v_i)^\top (W^n_k v_k)
                             / \sqrt{d}\big)}, \quad j \in \mathcal{A}_i

        \hat v_i = \mathrm{LayerNorm}\Big(v_i + W_o \big\Vert_{n=1}^{H}
                   \sum_{j \in \mathcal{A}_i} \alpha^n_{ij} W^n_v v_j\Big)

    where :math:`\mathcal{A}_i` are the neighbours of vertex :math:`i` (Eq. 3-4 of KEMP; the
    residual stands in for the vertex itself, so there are no self-loops). A vertex without
    neighbours (padding) gets zero attention and keeps its input.

    Args:
        hidden_dim (int): vertex width ``D``.
        num_heads (int): heads ``H``.
        attention_dim (int, optional): total query/key/value width over heads (default ``D``).
        dropout (float, optional): dropout on attention weights and the output (default 0).

    Shapes:
        - input ``x``: ``[B, N, D]``; ``adjacency``: ``[B, N, N]`` bool.
        - output: ``[B, N, D]``; with ``return_attention``, also ``[B, H, N, N]`` weights.
    """

    def __init__(
        self,
        hidden_dim: int,
        num_heads: int,
        attention_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        attention_dim = attention_dim or hidden_dim
        if attention_dim % num_heads:
            raise ValueError(
                f"attention_dim={attention_dim} not divisible by num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.head_dim = attention_dim // num_heads
        self.query = nn.Linear(hidden_dim, attention_dim)
        self.key = nn.Linear(hidden_dim, attention_dim)
        self.value = nn.Linear(hidden_dim, attention_dim)
        self.out = nn.Linear(attention_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, count, _ = x.shape
        return x.view(batch, count, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, N, d]

    def forward(
        self, x: torch.Tensor, adjacency: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch, count, _ = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, N, N]
        allowed = adjacency[:, None, :, :]  # [B, 1, N, N]
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        weights = torch.nan_to_num(weights, nan=0.0)  # rows with no neighbour: all -inf -> 0
        mixed = self.dropout(weights) @ v  # [B, H, N, d]
        mixed = mixed.transpose(1, 2).reshape(batch, count, -1)  # [B, N, H*d]
        out = self.norm(x + self.dropout(self.out(mixed)))  # [B, N, D]
        if return_attention:
            return out, weights
        return out


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``scores`` over positions where ``mask`` is True (0 elsewhere; all-False -> 0)."""
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.nan_to_num(F.softmax(scores, dim=dim), nan=0.0)
