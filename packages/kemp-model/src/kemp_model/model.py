"""KEMP (Li et al., AAAI 2022): the whole model in one file, classes in dependency order.

Notation: ``B`` batch, ``W`` words (CLS first), ``C`` concepts, ``N = W + C`` vertices,
``T`` target steps, ``D`` hidden size, ``E`` embedding size, ``V`` vocabulary, ``H`` heads.

Encoder (phase B):
  Eq. 2    vertex embedding = word + position + vertex state (CLS/speaker/listener/knowledge);
           a concept takes the position of the word it hangs off (with linear feed-forwards the
           concept order is irrelevant; the convolutional ones mix neighbouring vertices in their
           stored order, as the official code does).
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

What the ``kemp`` preset shares with the official code (docs/DESIGN.md §8): a
300-wide word table scaled by sqrt(300) and projected, pre-norm layers with MoEL's convolutional
feed-forward blocks, the emotion vector y_0 in place of SOS, the c_e concatenation in every
decoder layer's cross-attention, an untied output layer with a bias, Xavier initialisation, and
label smoothing over the copy-mixed distribution (:class:`kemp_model.loss.Loss`).

Deliberate differences (official bugs not copied): graph attention masks non-neighbours with
-inf and scales its logits (the official ``masked_fill(mask, 1e-24)`` leaves them attended, PAD
included), every vertex is updated (the official updates word vertices only), a concept takes
its anchor word's position (the official numbers concepts after the padded history), the
intensity softmax of Eq. 7 and the attention loss cover real vertices only (the official
includes PAD, whose context intensity it sets to 0.5), the copy distribution is the decoder's
attention itself (the official applies a second softmax to it, which makes it nearly uniform
over all source positions), padded vertices are zeroed before each convolution, and LayerNorm is
torch's (the official divides by the unbiased std plus 1e-6).
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
    """Position-wise FFN: Linear -> ReLU -> dropout -> Linear. ``[B, L, D] -> [B, L, D]``."""

    def __init__(self, dim: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, inner)
        self.outer = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.outer(self.dropout(F.relu(self.inner(x))))


class ConvFeedForward(nn.Module):
    """MoEL's convolutional FFN ('cc'): Conv1d(k=3) -> ReLU -> dropout -> Conv1d(k=3) -> ReLU.

    The official block applies the ReLU after the second convolution too. Padding is one
    position on each side in the encoder, two on the left in the decoder (``causal``: position
    ``t`` sees ``t-2..t``). Padded vertices are zeroed before each convolution (``mask``), so
    they do not leak into their real neighbours (the official code does not mask them).

    Shapes: ``x`` ``[B, L, D]``; ``mask`` ``[B, L]`` bool or None; output ``[B, L, D]``.
    """

    kernel = 3

    def __init__(self, dim: int, inner: int, dropout: float, causal: bool) -> None:
        super().__init__()
        self.inner = nn.Conv1d(dim, inner, self.kernel)
        self.outer = nn.Conv1d(inner, dim, self.kernel)
        self.dropout = nn.Dropout(dropout)
        self.padding = (self.kernel - 1, 0) if causal else (1, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        keep = None if mask is None else mask[:, None, :].to(x.dtype)  # [B, 1, L]
        h = x.transpose(1, 2)  # [B, D, L]
        if keep is not None:
            h = h * keep
        h = F.relu(self.inner(F.pad(h, self.padding)))  # [B, F, L]
        h = self.dropout(h)
        if keep is not None:
            h = h * keep
        h = F.relu(self.outer(F.pad(h, self.padding)))  # [B, D, L]
        return h.transpose(1, 2)  # [B, L, D]


def feed_forward(config: ModelConfig, causal: bool) -> nn.Module:
    """The FFN block ``config.feed_forward`` names."""
    if config.feed_forward == "conv":
        return ConvFeedForward(config.hidden_dim, config.ffn_dim, config.dropout, causal=causal)
    return FeedForward(config.hidden_dim, config.ffn_dim, config.dropout)


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
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal,
        )  # [B, H, L, d]
        return self.out(y.transpose(1, 2).reshape(batch, length, -1))  # [B, L, D]


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer (Eq. 5-6): x + MHAtt(LN x), then x + FFN(LN x)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.norm_attn = nn.LayerNorm(d)
        self.attn = SelfAttention(d, config.attention_dim, config.num_heads, config.dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = feed_forward(config, causal=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm_attn(x), key_mask=mask))  # [B, N, D]
        return x + self.dropout(self.ffn(self.norm_ffn(x), mask))  # [B, N, D]


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
        self.ffn = feed_forward(config, causal=True)
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
        return EncoderState(
            **{f.name: getattr(self, f.name).index_select(0, index) for f in fields(self)}
        )

    def __len__(self) -> int:
        return int(self.memory.shape[0])


@dataclass
class ModelOutput:
    """One batch's loss terms as sums, and the counts that normalise them (mergeable across
    ranks and batches). :class:`kemp_model.loss.Loss` combines them into Eq. 21.

    Shapes: every field is a 0-d tensor except ``emotion_logits`` ``[B, 32]``.
    """

    generation_nll_sum: torch.Tensor  # -sum log P(y_t) of the reference tokens (no smoothing)
    smoothing_sum: torch.Tensor  # sum_t -1/(V-2) sum_{v != y_t, PAD} log P(v); 0 unless asked
    emotion_nll_sum: torch.Tensor  # Eq. 10 summed over labelled examples
    attention_loss_sum: torch.Tensor  # Eq. 16 summed over examples
    token_count: torch.Tensor  # reference tokens (EOS included, PAD not)
    example_count: torch.Tensor  # labelled examples (all examples without an emotion head)
    emotion_correct: torch.Tensor
    example_mean_nll_sum: torch.Tensor  # sum over examples of their mean token NLL
    scored_examples: torch.Tensor  # examples with at least one reference token
    emotion_logits: torch.Tensor  # [B, 32]


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
        self.embed_scale = math.sqrt(e) if config.embedding_scale else 1.0
        self.embed_proj = (
            nn.Linear(e, d, bias=False) if e != d or config.init == "xavier" else nn.Identity()
        )
        self.role_embedding = nn.Embedding(NUM_ROLES, d)  # vertex state, Eq. 2
        self.embed_dropout = nn.Dropout(config.dropout)
        self.graph_layers = nn.ModuleList(
            GraphAttention(d, config.num_heads, config.attention_dim, config.graph_dropout)
            for _ in range(config.graph_layers if config.use_knowledge else 0)
        )
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(config) for _ in range(config.encoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(d)
        self.emotion_head = nn.Linear(d, NUM_EMOTIONS, bias=False)  # W_e, Eq. 8
        # W_z, Eq. 11 (only the emotion-dependency decoder starts from e_p)
        self.emotion_start = nn.Linear(NUM_EMOTIONS, d) if config.emotion_decoder else None
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(config) for _ in range(config.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d)
        if config.tie_embeddings:
            self.output_proj = nn.Linear(d, e)  # then @ embedding.T
            self.output = None
        else:
            self.output_proj = None
            self.output = nn.Linear(d, vocab_size)  # [V, D] + bias
        self.copy_gate = nn.Linear(d, 1) if config.copy else None  # p_gen, Eq. 17
        if config.init == "xavier":
            self._init_xavier()
        else:
            self._init_normal()
        with torch.no_grad():
            self.embedding.weight[schema.PAD_ID].zero_()

    def _init_xavier(self) -> None:
        """The official scheme: Xavier-uniform on every weight matrix (convolutions included)
        but the word table, whose rows are ``N(0, 0.01^2)`` until pre-trained rows replace them."""
        for name, parameter in self.named_parameters():
            if parameter.dim() > 1 and name != "embedding.weight":
                nn.init.xavier_uniform_(parameter)
        nn.init.normal_(self.embedding.weight, std=0.01)

    def _init_normal(self) -> None:
        """Word rows ~ N(0, 1) (pre-trained vectors are rescaled to unit std on load) and a
        projection that keeps that std, so a vertex's word content is as large as its
        vertex-state embedding (N(0, 1)) and its position encoding (std ~0.7). Smaller word rows
        drown the content and the emotion head learns nothing for thousands of steps."""
        e, d = self.config.embedding_dim, self.config.hidden_dim
        nn.init.normal_(self.embedding.weight, std=1.0)
        if isinstance(self.embed_proj, nn.Linear):
            nn.init.normal_(self.embed_proj.weight, std=e**-0.5)
        if self.output_proj is not None:
            nn.init.normal_(self.output_proj.weight, std=(d * e) ** -0.5)  # logits start ~N(0, 1)
            nn.init.zeros_(self.output_proj.bias)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part: ``word_table``, ``output`` (the vocabulary projection), ``other``
        and ``total`` (what ``kemp-model train`` prints at start)."""
        table = self.embedding.weight.numel()
        output = 0 if self.output is None else sum(p.numel() for p in self.output.parameters())
        total = sum(p.numel() for p in self.parameters())
        return {
            "word_table": table,
            "output": output,
            "other": total - table - output,
            "total": total,
        }

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
        """``[B, L]`` ids -> ``[B, L, D]`` (embedding table, scaled when configured, then the
        projection to the hidden size)."""
        rows = self.embedding(ids)
        if self.embed_scale != 1.0:
            rows = rows * self.embed_scale
        return self.embed_proj(rows)

    def load_vectors(self, vectors: torch.Tensor, present: torch.Tensor) -> None:
        """Copy pre-trained rows into the embedding table where ``present`` is True.

        With ``init="normal"`` the rows are divided by their overall standard deviation (one
        scalar: directions and relative norms are kept) so they match the unit-std random rows
        and the other summands; with ``init="xavier"`` they are copied unchanged, as the
        official code does.

        Shapes: ``vectors`` ``[V, E]``, ``present`` ``[V]`` bool.
        """
        if vectors.shape != self.embedding.weight.shape:
            raise ValueError(
                f"vectors {tuple(vectors.shape)} != table {tuple(self.embedding.weight.shape)}"
            )
        with torch.no_grad():
            rows = vectors[present].to(self.embedding.weight.dtype)
            if len(rows) and self.config.init == "normal":
                rows = rows / rows.std().clamp_min(1e-8)  # unit std, like the random rows
            self.embedding.weight[present] = rows
            self.embedding.weight[schema.PAD_ID].zero_()

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
    def decoder_states(
        self, state: EncoderState, prefix: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder output ``[B, t, D]`` and last-layer head-averaged cross-attention ``[B, t, N]``.

        ``prefix`` is ``[B, t]`` and starts with SOS, which is replaced by y_0 (Eq. 11).
        """
        steps = prefix.shape[1]
        y = torch.cat([state.start, self.embed_tokens(prefix[:, 1:])], dim=1)  # [B, t, D]
        positions = torch.arange(steps, device=prefix.device)[None, :]
        y = self.embed_dropout(y + sinusoid(positions, self.config.hidden_dim))
        weights = state.memory.new_zeros(prefix.shape[0], steps, state.memory.shape[1])
        for layer in self.decoder_layers:
            y, weights = layer(
                y, state.memory, state.memory_mask, state.intensity, state.emotion_context
            )
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
        self, state: EncoderState, target: torch.Tensor, *, smoothing: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Teacher-forced log P(y_t) of the reference tokens, at real target positions only.

        ``P`` is the copy-mixed distribution (Eq. 17-19):
        ``P(w) = p_gen softmax(z)_w + (1 - p_gen) sum_{i: x_i = w} a_i``. PAD positions of the
        target never reach the vocabulary projection (``M`` real tokens instead of ``B * T``).

        Without ``smoothing`` only ``P(y)`` is needed, which takes the gold logit, the
        log-normaliser and the attention on vertices holding ``y``: no ``[M, V]`` mixture is
        built. With ``smoothing`` the full mixture ``[M, V]`` is built once and also gives the
        label-smoothing term ``-1/(V-2) sum_{v != y, PAD} log P(v)`` per token (the official
        code smooths this copy-mixed distribution).

        Returns:
            ``log P(y)`` ``[M]`` (row-major order over the real target tokens), the smoothing
            term ``[M]`` (``None`` without ``smoothing``), and the attention ``[B, T, N]``.
        """
        sos = torch.full_like(target[:, :1], schema.SOS_ID)
        prefix = torch.cat([sos, target[:, :-1]], dim=1)  # [B, T]
        y, weights = self.decoder_states(state, prefix)  # [B, T, D], [B, T, N]
        tokens = target != schema.PAD_ID  # [B, T]
        y_real = y[tokens]  # [M, D]
        gold = target[tokens][:, None]  # [M, 1]
        logits = self.vocab_logits(y_real)  # [M, V]
        if smoothing:
            if self.copy_gate is None:
                log_dist = F.log_softmax(logits, dim=-1)  # [M, V]
            else:
                p_gen = self.copy_gate_prob(y_real)  # [M, 1]
                attention = weights.float()[tokens]  # [M, N]
                sources = state.source_ids[:, None, :].expand(-1, target.shape[1], -1)[
                    tokens
                ]  # [M, N]
                dist = (p_gen * F.softmax(logits, dim=-1)).scatter_add(
                    1, sources, (1.0 - p_gen) * attention
                )  # [M, V]
                log_dist = torch.log(dist + 1e-18)  # [M, V] (no clamp: one pass less)
            gold_log_prob = log_dist.gather(1, gold).squeeze(1)  # [M]
            others = log_dist.sum(dim=-1) - gold_log_prob - log_dist[:, schema.PAD_ID]  # [M]
            return gold_log_prob, -others / max(self.vocab_size - 2, 1), weights
        vocab_log_prob = logits.gather(1, gold).squeeze(1) - torch.logsumexp(logits, dim=-1)  # [M]
        if self.copy_gate is None:
            return vocab_log_prob, None, weights
        p_gen = self.copy_gate_prob(y_real).squeeze(1)  # [M]
        match = state.source_ids[:, None, :] == target[:, :, None]  # [B, T, N]
        copy_prob = (weights.float() * match).sum(dim=-1)[tokens]  # [M]
        prob = p_gen * vocab_log_prob.exp() + (1.0 - p_gen) * copy_prob  # [M]
        return torch.log(prob.clamp_min(1e-12)), None, weights

    # ---------------------------------------------------------------- training loss
    def forward(self, batch: Batch, *, smoothing: bool = False) -> ModelOutput:
        """All loss terms of Eq. 21 for a batch, as sums and counts (see :class:`ModelOutput`;
        :class:`kemp_model.loss.Loss` combines them).

        Args:
            smoothing: also compute the label-smoothing term over the full copy-mixed
                distribution (training with ``label_smoothing > 0``; evaluation skips it).
        """
        cfg = self.config
        state = self.encode(batch)
        target = batch.target  # [B, T]
        tokens = target != schema.PAD_ID  # [B, T]
        log_prob, smooth, weights = self.target_log_probs(state, target, smoothing=smoothing)
        nll = -log_prob  # [M]
        # per-example mean NLL (the paper's perplexity averages these over examples)
        row_of_token = tokens.nonzero(as_tuple=True)[0]  # [M]
        example_nll = nll.detach().new_zeros(len(batch)).index_add_(0, row_of_token, nll.detach())
        example_tokens = tokens.sum(dim=1)  # [B]
        scored = example_tokens > 0
        example_mean = (example_nll[scored] / example_tokens[scored]).sum()
        labelled = batch.emotion >= 0  # [B]
        zero = nll.new_zeros(())
        if cfg.emotion_classifier:
            emo_nll = F.cross_entropy(
                state.emotion_logits.float(), batch.emotion.clamp(min=0), reduction="none"
            )  # [B], Eq. 10
            emo_sum = (emo_nll * labelled).sum()
        else:
            emo_sum = zero
        correct = ((state.emotion_logits.argmax(-1) == batch.emotion) & labelled).sum()
        if cfg.attention_loss:
            att_sum = emotional_attention_loss(
                weights, tokens, state.intensity, state.memory_mask
            ).sum()
        else:
            att_sum = zero
        return ModelOutput(
            generation_nll_sum=nll.sum(),
            smoothing_sum=smooth.sum() if smooth is not None else zero,
            emotion_nll_sum=emo_sum,
            attention_loss_sum=att_sum,
            token_count=tokens.sum(),
            example_count=(
                labelled.sum()
                if cfg.emotion_classifier
                else torch.tensor(len(batch), device=target.device)
            ),
            emotion_correct=correct,
            example_mean_nll_sum=example_mean,
            scored_examples=scored.sum(),
            emotion_logits=state.emotion_logits.detach(),
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
