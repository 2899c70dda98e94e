"""KEMP (Li et al., AAAI 2022): the whole model in one file, classes in dependency order.

Notation: ``B`` batch, ``W`` words (CLS first), ``C`` concepts, ``N = W + C`` vertices,
``T`` target steps, ``D`` hidden size, ``E`` embedding size, ``V`` vocabulary, ``H`` heads.

Encoder (phase B):
  Eq. 2    vertex embedding = word + position + vertex state (CLS/speaker/listener/knowledge);
           a concept takes the position of the word it hangs off, so concept order is irrelevant.
  Eq. 3-4  multi-head graph attention over the emotional context graph (graph_attention.py).
  Eq. 5-6  transformer layers over all vertices (global context).
  Eq. 7-10 emotional signal perception: c_e = sum_i softmax(eta)_i h_i over real vertices,
           e_p = W_e c_e (32 logits), NLL against the label.
Decoder (phase C):
  Eq. 11   y_0 = W_z e_p is prepended to the response embeddings (instead of SOS).
  Eq. 12-14 masked self-attention; emotional cross-attention over the graph memory whose
           logits add a learned per-head multiple of each vertex's emotion intensity; the
           result is concatenated with c_e and projected; FFN; LayerNorm.
  Eq. 15-16 emotional attention loss: squared error between the decoder's mean cross-attention
           on each vertex and softmax(eta) (the official code's MSE against softmaxed intensity).
  Eq. 17-19 copy: P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_i over graph vertices.
  Eq. 21   L = gamma_emo L_emo + gamma_gen L_gen + gamma_att L_att.

Differences from the official code (deliberate): graph attention masks non-neighbours with -inf
(the official ``masked_fill(mask, 1e-24)`` leaves them attended), every vertex is updated (the
official updates word vertices only), the copy distribution is the mean of the heads' attention
distributions (the official takes a softmax of the summed logits), losses are combined as the
official code combines them by default (both summed, then divided by the batch's token count,
which Adam cannot tell from the plain sum; see ``ModelConfig.emotion_loss_reduction``), and label smoothing
regularises the generator's vocabulary distribution (the official smooths the copy-mixed one;
ours never builds the ``[B, T, V]`` mixture in training, see :meth:`KEMP.target_log_probs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from kemp_kg import schema
from kemp_model.config import ModelConfig
from kemp_model.data import Batch
from kemp_model.graph_attention import GraphAttention, build_adjacency, masked_softmax

NUM_EMOTIONS = len(schema.EMOTIONS)
NUM_ROLES = len(schema.Role)


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal position encodings (Vaswani et al.). ``[...]`` long -> ``[..., dim]`` float."""
    half = dim // 2
    freq = torch.exp(
        torch.arange(half, device=positions.device, dtype=torch.float32)
        * (-math.log(10000.0) / max(half - 1, 1))
    )
    angles = positions.float()[..., None] * freq  # [..., half]
    enc = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        enc = F.pad(enc, (0, 1))
    return enc


class FeedForward(nn.Module):
    """Position-wise FFN: Linear -> ReLU -> dropout -> Linear. ``[..., D] -> [..., D]``."""

    def __init__(self, dim: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, inner)
        self.outer = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.dropout(F.relu(self.inner(x))))


class SelfAttention(nn.Module):
    """Multi-head self-attention with torch's fused ``scaled_dot_product_attention``.

    Shapes: ``x`` ``[B, L, D]``; ``key_mask`` ``[B, L]`` bool (True = attend) or None;
    output ``[B, L, D]``.
    """

    def __init__(self, dim: int, attention_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * attention_dim)
        self.out = nn.Linear(attention_dim, dim)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x [B, L, A]
        q, k, v = (t.view(batch, length, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, L]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal,
        )  # [B, H, L, d]  # fmt: skip
        return self.out(y.transpose(1, 2).reshape(batch, length, -1))  # [B, L, D]


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer (Eq. 5-6): x + MHAtt(LN x), then x + FFN(LN x)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.norm_attn = nn.LayerNorm(d)
        self.attn = SelfAttention(d, config.attention_dim, config.num_heads, config.dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.ffn_dim, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm_attn(x), key_mask=mask))  # [B, N, D]
        return x + self.dropout(self.ffn(self.norm_ffn(x)))  # [B, N, D]


class EmotionalCrossAttention(nn.Module):
    """Decoder -> graph attention whose logits add ``w_h * eta_j`` per head (Eq. 13).

    With ``emotional=False`` it is plain cross-attention (the ``wo-edd`` ablation). The weights
    are computed explicitly (they feed the copy mechanism and the attention loss).

    Shapes: ``y`` ``[B, T, D]``, ``memory`` ``[B, N, D]``, ``memory_mask`` ``[B, N]`` bool,
    ``intensity`` ``[B, N]``; returns ``[B, T, D]`` and head-averaged weights ``[B, T, N]``.
    """

    def __init__(self, config: ModelConfig, emotional: bool) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.attention_dim // config.num_heads
        self.query = nn.Linear(config.hidden_dim, config.attention_dim)
        self.key_value = nn.Linear(config.hidden_dim, 2 * config.attention_dim)
        self.out = nn.Linear(config.attention_dim, config.hidden_dim)
        self.intensity_weight = nn.Parameter(torch.ones(config.num_heads)) if emotional else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        intensity: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, _ = y.shape
        vertices = memory.shape[1]
        q = self.query(y).view(batch, steps, self.num_heads, -1).transpose(1, 2)  # [B, H, T, d]
        k, v = self.key_value(memory).chunk(2, dim=-1)  # 2 x [B, N, A]
        k = k.view(batch, vertices, self.num_heads, -1).transpose(1, 2)  # [B, H, N, d]
        v = v.view(batch, vertices, self.num_heads, -1).transpose(1, 2)  # [B, H, N, d]
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.head_dim)  # [B, H, T, N]
        if self.intensity_weight is not None:
            bias = self.intensity_weight.float()[None, :, None, None] * intensity[:, None, None, :]
            scores = scores + bias  # [B, H, T, N]
        weights = masked_softmax(scores, memory_mask[:, None, None, :])  # [B, H, T, N]
        mixed = self.dropout(weights.to(v.dtype)) @ v  # [B, H, T, d]
        mixed = mixed.transpose(1, 2).reshape(batch, steps, -1)  # [B, T, A]
        return self.out(mixed), weights.mean(dim=1)  # [B, T, D], [B, T, N]


class DecoderLayer(nn.Module):
    """Emotion-dependency decoder layer (Eq. 12-14), pre-norm.

    s = y + SelfAttn(LN y) (causal); c = CrossAttn(LN s, graph); with the emotion decoder
    c <- W_c [c; c_e]; s = s + c; out = s + FFN(LN s).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.norm_self = nn.LayerNorm(d)
        self.self_attn = SelfAttention(d, config.attention_dim, config.num_heads, config.dropout)
        self.norm_cross = nn.LayerNorm(d)
        self.cross_attn = EmotionalCrossAttention(config, emotional=config.emotion_decoder)
        self.emotion_concat = nn.Linear(2 * d, d) if config.emotion_decoder else None
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.ffn_dim, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        intensity: torch.Tensor,
        emotion_context: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y = y + self.dropout(self.self_attn(self.norm_self(y), causal=True))  # [B, T, D]
        context, weights = self.cross_attn(self.norm_cross(y), memory, memory_mask, intensity)
        if self.emotion_concat is not None:
            c_e = emotion_context[:, None, :].expand_as(context)  # [B, T, D]
            context = self.emotion_concat(torch.cat([context, c_e], dim=-1))  # [B, T, D]
        y = y + self.dropout(context)
        return y + self.dropout(self.ffn(self.norm_ffn(y))), weights  # [B, T, D], [B, T, N]


@dataclass
class EncoderState:
    """Everything decoding needs, per example. Rows can be reordered with :meth:`index_select`.

    Shapes: memory ``[B, N, D]``; memory_mask ``[B, N]`` bool; intensity ``[B, N]``;
    emotion_context (c_e) ``[B, D]``; emotion_logits ``[B, 32]``; source_ids ``[B, N]`` long
    (vocabulary ids of the vertices, for copying); start ``[B, 1, D]`` (y_0).
    """

    memory: torch.Tensor
    memory_mask: torch.Tensor
    intensity: torch.Tensor
    emotion_context: torch.Tensor
    emotion_logits: torch.Tensor
    source_ids: torch.Tensor
    start: torch.Tensor

    def index_select(self, index: torch.Tensor) -> EncoderState:
        """Rows ``index`` of every field (beam search expands ``B`` to ``B * beam`` with it)."""
        return EncoderState(**{f.name: getattr(self, f.name).index_select(0, index) for f in fields(self)})

    def __len__(self) -> int:
        return int(self.memory.shape[0])


@dataclass
class ModelOutput:
    """Losses of one batch as sums plus the counts that normalise them (mergeable across ranks).

    ``loss`` is the Eq. 21 total with this batch's own counts; the trainer recomputes it with
    global counts under DDP (:meth:`total`).
    """

    generation_loss_sum: torch.Tensor  # training generation loss (label-smoothed if configured)
    generation_nll_sum: torch.Tensor  # unsmoothed NLL of the reference tokens (perplexity)
    emotion_nll_sum: torch.Tensor
    attention_loss_sum: torch.Tensor
    token_count: torch.Tensor
    example_count: torch.Tensor
    emotion_correct: torch.Tensor
    emotion_logits: torch.Tensor  # [B, 32]
    weights: tuple[float, float, float]  # gamma (emotion, generation, attention)
    emotion_reduction: str = "official"  # see ModelConfig.emotion_loss_reduction

    def total(self, token_count: torch.Tensor | float, example_count: torch.Tensor | float) -> torch.Tensor:
        """Eq. 21 with the given normalisers (tokens, examples).

        ``"official"``: ``(L_gen_sum + L_emo_sum + L_att_mean) / tokens``: the official code's
        summed losses (``KLDivLoss(reduction='sum')`` over tokens, ``CrossEntropyLoss(
        reduction='sum')`` over examples) scaled by a constant per batch, so one example's
        emotion NLL weighs as much as one token's NLL. ``"sum"``: the token-mean generation loss
        plus the batch-summed emotion NLL (emotion weighted ~tokens-per-batch times more than
        in the official code). ``"mean"``: token mean plus per-example means.
        """
        emo, gen, att = self.weights
        attention = att * self.attention_loss_sum / example_count
        if self.emotion_reduction == "official":
            return (gen * self.generation_loss_sum + emo * self.emotion_nll_sum + attention) / token_count
        emotion_normaliser = 1.0 if self.emotion_reduction == "sum" else example_count
        return (
            gen * self.generation_loss_sum / token_count
            + emo * self.emotion_nll_sum / emotion_normaliser
            + attention
        )

    @property
    def loss(self) -> torch.Tensor:
        return self.total(self.token_count.clamp(min=1), self.example_count.clamp(min=1))


class KEMP(nn.Module):
    """The KEMP model. See the module docstring for the equations.

    Args:
        config: the architecture and loss weights.
        vocab_size: size of the graph file's vocabulary (special tokens included).
    """

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size <= len(schema.SPECIAL_TOKENS):
            raise ValueError(f"vocab_size={vocab_size} holds only special tokens")
        self.config = config
        self.vocab_size = vocab_size
        d, e = config.hidden_dim, config.embedding_dim
        self.embedding = nn.Embedding(vocab_size, e, padding_idx=schema.PAD_ID)  # [V, E]
        # Scales: word rows ~ N(0, 1) (pre-trained vectors are rescaled to unit std on load),
        # and the projection keeps that std, so a vertex's word content is as large as its
        # vertex-state embedding (N(0, 1)) and its position encoding (std ~0.7), as in the
        # official code where words and states come from one table. Smaller word rows drown
        # the content and the emotion head learns nothing for thousands of steps.
        nn.init.normal_(self.embedding.weight, std=1.0)
        with torch.no_grad():
            self.embedding.weight[schema.PAD_ID].zero_()
        if e != d:
            self.embed_proj = nn.Linear(e, d, bias=False)
            nn.init.normal_(self.embed_proj.weight, std=e**-0.5)
        else:
            self.embed_proj = nn.Identity()
        self.role_embedding = nn.Embedding(NUM_ROLES, d)  # vertex state, Eq. 2
        self.embed_dropout = nn.Dropout(config.dropout)
        self.graph_layers = nn.ModuleList(
            GraphAttention(d, config.num_heads, config.attention_dim, config.graph_dropout)
            for _ in range(config.graph_layers if config.use_knowledge else 0)
        )
        self.encoder_layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.emotion_head = nn.Linear(d, NUM_EMOTIONS, bias=False)  # W_e, Eq. 8
        # W_z, Eq. 11 (only the emotion-dependency decoder starts from e_p)
        self.emotion_start = nn.Linear(NUM_EMOTIONS, d) if config.emotion_decoder else None
        self.decoder_layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        if config.tie_embeddings:
            self.output_proj = nn.Linear(d, e)  # then @ embedding.T
            nn.init.normal_(self.output_proj.weight, std=(d * e) ** -0.5)  # logits start ~N(0, 1)
            nn.init.zeros_(self.output_proj.bias)
            self.output = None
        else:
            self.output_proj = None
            self.output = nn.Linear(d, vocab_size)
        self.copy_gate = nn.Linear(d, 1) if config.copy else None  # p_gen, Eq. 17

    def compile_layers(self) -> None:
        """``torch.compile`` each graph, encoder and decoder layer (dynamic shapes), in place.

        The layers hold the dense work and see only ``[B, L, D]`` tensors with varying ``B`` and
        ``L``; the model around them has data-dependent shapes (gold-token selection), on which
        whole-model compilation fails in torch 2.13 (inductor ``ValueRangeError``).
        """
        for layer in (*self.graph_layers, *self.encoder_layers, *self.decoder_layers):
            layer.compile(dynamic=True)

    # ---------------------------------------------------------------- embeddings
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` ids -> ``[B, L, D]`` (embedding table, then projection to hidden)."""
        return self.embed_proj(self.embedding(ids))

    def load_vectors(self, vectors: torch.Tensor, present: torch.Tensor) -> None:
        """Copy pre-trained rows into the embedding table where ``present`` is True.

        The rows are divided by their overall standard deviation (one scalar: directions and
        relative norms are kept) so they match the unit-std random rows and the other summands.

        Shapes: ``vectors`` ``[V, E]``, ``present`` ``[V]`` bool.
        """
        if vectors.shape != self.embedding.weight.shape:
            raise ValueError(f"vectors {tuple(vectors.shape)} != table {tuple(self.embedding.weight.shape)}")
        with torch.no_grad():
            rows = vectors[present].to(self.embedding.weight.dtype)
            if len(rows):
                rows = rows / rows.std().clamp_min(1e-8)  # unit std, like the random rows
            self.embedding.weight[present] = rows

    # ---------------------------------------------------------------- encoder
    def encode(self, batch: Batch) -> EncoderState:
        """Phase B: graph -> vertex memory, c_e and emotion logits (Eq. 2-9)."""
        cfg = self.config
        words = batch.context_ids.shape[1]
        positions = torch.arange(words, device=batch.context_ids.device)[None, :]  # [1, W]
        x = (
            self.embed_tokens(batch.context_ids)
            + sinusoid(positions, cfg.hidden_dim)
            + self.role_embedding(batch.context_roles)
        )  # [B, W, D]
        mask, intensity, source = batch.context_mask, batch.context_intensity, batch.context_ids
        if cfg.use_knowledge:
            concept_pos = batch.concept_anchor  # a concept sits at its anchor word's position
            knowledge = torch.full_like(batch.concept_ids, int(schema.Role.KNOWLEDGE))
            concepts = (
                self.embed_tokens(batch.concept_ids)
                + sinusoid(concept_pos, cfg.hidden_dim)
                + self.role_embedding(knowledge)
            )  # [B, C, D]
            adjacency = build_adjacency(mask, batch.concept_anchor, batch.concept_mask)  # [B, N, N]
            x = torch.cat([x, concepts], dim=1)  # [B, N, D]
            mask = torch.cat([mask, batch.concept_mask], dim=1)  # [B, N]
            intensity = torch.cat([intensity, batch.concept_intensity], dim=1)  # [B, N]
            source = torch.cat([source, batch.concept_ids], dim=1)  # [B, N]
            x = self.embed_dropout(x)
            for layer in self.graph_layers:
                x = layer(x, adjacency)  # [B, N, D]
        else:
            x = self.embed_dropout(x)
        for layer in self.encoder_layers:
            x = layer(x, mask)  # [B, N, D]
        memory = self.encoder_norm(x)  # [B, N, D]
        pool = masked_softmax(intensity, mask)  # [B, N], Eq. 7
        c_e = (pool[:, :, None] * memory).sum(dim=1)  # [B, D]
        emotion_logits = self.emotion_head(c_e)  # e_p, [B, 32]
        if cfg.emotion_decoder:
            start = self.emotion_start(emotion_logits)[:, None, :]  # y_0 = W_z e_p, [B, 1, D]
        else:
            sos = torch.full_like(batch.context_ids[:, :1], schema.SOS_ID)
            start = self.embed_tokens(sos)  # [B, 1, D]
        return EncoderState(memory, mask, intensity, c_e, emotion_logits, source, start)

    # ---------------------------------------------------------------- decoder
    def decoder_states(self, state: EncoderState, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder output ``[B, t, D]`` and last-layer head-averaged cross-attention ``[B, t, N]``.

        ``prefix`` is ``[B, t]`` and starts with SOS, which is replaced by y_0 (Eq. 11).
        """
        steps = prefix.shape[1]
        y = torch.cat([state.start, self.embed_tokens(prefix[:, 1:])], dim=1)  # [B, t, D]
        positions = torch.arange(steps, device=prefix.device)[None, :]
        y = self.embed_dropout(y + sinusoid(positions, self.config.hidden_dim))
        weights = state.memory.new_zeros(prefix.shape[0], steps, state.memory.shape[1])
        for layer in self.decoder_layers:
            y, weights = layer(y, state.memory, state.memory_mask, state.intensity, state.emotion_context)
        return self.decoder_norm(y), weights  # [B, t, D], [B, t, N]

    def vocab_logits(self, y: torch.Tensor) -> torch.Tensor:
        """Generator logits ``[..., V]`` (float32) from decoder states ``[..., D]``."""
        if self.output is not None:
            return self.output(y).float()
        return (self.output_proj(y) @ self.embedding.weight.T).float()  # tied: [..., V]

    def copy_gate_prob(self, y: torch.Tensor) -> torch.Tensor:
        """p_gen ``[..., 1]`` (Eq. 17), float32."""
        return torch.sigmoid(self.copy_gate(y).float())

    def decode(
        self, state: EncoderState, prefix: torch.Tensor, *, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full next-token distributions for every prefix position (used for decoding).

        Args:
            last_only: project only the last position (``t' = 1``): what a decoding step
                needs, and ~20x cheaper than projecting every position onto the vocabulary.

        Returns:
            log-probabilities ``[B, t', V]`` (copy included) and the head-averaged cross-attention
            of the last layer ``[B, t', N]``, with ``t' = t`` (or 1 when ``last_only``).
        """
        y, weights = self.decoder_states(state, prefix)  # [B, t, D], [B, t, N]
        if last_only:
            y, weights = y[:, -1:], weights[:, -1:]  # [B, 1, D], [B, 1, N]
        logits = self.vocab_logits(y)  # [B, t', V]
        if self.copy_gate is None:
            return F.log_softmax(logits, dim=-1), weights
        p_gen = self.copy_gate_prob(y)  # [B, t, 1]
        vocab_dist = p_gen * F.softmax(logits, dim=-1)  # [B, t, V]
        copy_dist = (1.0 - p_gen) * weights.float()  # [B, t, N], Eq. 18
        index = state.source_ids[:, None, :].expand(-1, y.shape[1], -1)  # [B, t', N]
        dist = vocab_dist.scatter_add(2, index, copy_dist)  # [B, t, V], Eq. 19
        return torch.log(dist.clamp_min(1e-12)), weights

    def decode_step(self, state: EncoderState, prefix: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[B, V]`` of the token after ``prefix`` (``[B, t]``, SOS first)."""
        log_probs, _ = self.decode(state, prefix, last_only=True)  # [B, 1, V]
        return log_probs[:, -1]

    def target_log_probs(
        self, state: EncoderState, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced log P(y_t) of the reference tokens, without building ``[B, T, V]``.

        Only real target positions reach the vocabulary projection, and the copy term needs
        just the attention on vertices holding the reference token:
        ``P(y) = p_gen softmax(z)_y + (1 - p_gen) sum_{i: x_i = y} a_i`` (Eq. 17-19).

        Returns:
            ``log P(y)`` ``[M]`` for the ``M`` real target tokens (row-major order), the
            cross-entropy of the generator's distribution with the uniform one ``[M]`` (the
            label-smoothing term), and the attention ``[B, T, N]``.
        """
        sos = torch.full_like(target[:, :1], schema.SOS_ID)
        prefix = torch.cat([sos, target[:, :-1]], dim=1)  # [B, T]
        y, weights = self.decoder_states(state, prefix)  # [B, T, D], [B, T, N]
        tokens = target != schema.PAD_ID  # [B, T]
        y_real = y[tokens]  # [M, D]
        gold = target[tokens]  # [M]
        logits = self.vocab_logits(y_real)  # [M, V]
        log_norm = torch.logsumexp(logits, dim=-1)  # [M]
        vocab_log_prob = logits.gather(1, gold[:, None]).squeeze(1) - log_norm  # [M]
        uniform_ce = log_norm - logits.mean(dim=-1)  # [M]: -mean_v log softmax(z)_v
        if self.copy_gate is None:
            return vocab_log_prob, uniform_ce, weights
        p_gen = self.copy_gate_prob(y_real).squeeze(1)  # [M]
        match = state.source_ids[:, None, :] == target[:, :, None]  # [B, T, N]
        copy_prob = (weights.float() * match).sum(dim=-1)[tokens]  # [M]
        prob = p_gen * vocab_log_prob.exp() + (1.0 - p_gen) * copy_prob  # [M]
        return torch.log(prob.clamp_min(1e-12)), uniform_ce, weights

    # ---------------------------------------------------------------- training loss
    def forward(self, batch: Batch) -> ModelOutput:
        """All loss terms of Eq. 21 for a batch (sums; see :class:`ModelOutput`).

        Label smoothing (when configured) mixes the token NLL with the cross-entropy of the
        generator's vocabulary distribution against the uniform one; it is a regulariser on
        the generator only (the official code smooths the copy-mixed distribution, which costs
        several full ``[B, T, V]`` passes).
        """
        cfg = self.config
        state = self.encode(batch)
        target = batch.target  # [B, T]
        tokens = target != schema.PAD_ID  # [B, T]
        log_prob, uniform_ce, weights = self.target_log_probs(state, target)  # [M], [M], [B, T, N]
        nll_sum = -log_prob.sum()
        if cfg.label_smoothing > 0:
            gen_sum = (1 - cfg.label_smoothing) * nll_sum + cfg.label_smoothing * uniform_ce.sum()
        else:
            gen_sum = nll_sum
        labelled = batch.emotion >= 0  # [B]
        if cfg.emotion_classifier:
            emo_nll = F.cross_entropy(
                state.emotion_logits.float(), batch.emotion.clamp(min=0), reduction="none"
            )  # [B], Eq. 10
            emo_sum = (emo_nll * labelled).sum()
        else:
            emo_sum = nll_sum.new_zeros(())
        correct = ((state.emotion_logits.argmax(-1) == batch.emotion) & labelled).sum()
        if cfg.attention_loss:
            att_sum = emotional_attention_loss(weights, tokens, state.intensity, state.memory_mask).sum()
        else:
            att_sum = nll_sum.new_zeros(())
        return ModelOutput(
            generation_loss_sum=gen_sum,
            generation_nll_sum=nll_sum.detach(),
            emotion_nll_sum=emo_sum,
            attention_loss_sum=att_sum,
            token_count=tokens.sum(),
            example_count=(labelled.sum() if cfg.emotion_classifier
                           else torch.tensor(len(batch), device=target.device)),
            emotion_correct=correct,
            emotion_logits=state.emotion_logits.detach(),
            weights=(cfg.emotion_weight, cfg.generation_weight, cfg.attention_weight),
            emotion_reduction=cfg.emotion_loss_reduction,
        )


def emotional_attention_loss(
    weights: torch.Tensor, tokens: torch.Tensor, intensity: torch.Tensor, memory_mask: torch.Tensor
) -> torch.Tensor:
    """Eq. 15-16 per example: mean over real vertices of ``(a_i - softmax(eta)_i)^2``.

    ``a_i`` is the decoder's cross-attention on vertex ``i`` averaged over real target steps.

    Shapes: weights ``[B, T, N]``; tokens ``[B, T]`` bool; intensity, memory_mask ``[B, N]``;
    returns ``[B]``.
    """
    steps = tokens.sum(dim=1, keepdim=True).clamp(min=1)  # [B, 1]
    attention = (weights.float() * tokens[:, :, None]).sum(dim=1) / steps  # [B, N]
    target = masked_softmax(intensity.float(), memory_mask)  # [B, N]
    squared = (attention - target).pow(2) * memory_mask  # [B, N]
    return squared.sum(dim=1) / memory_mask.sum(dim=1).clamp(min=1)  # [B]
