"""Model and training configuration: frozen dataclasses and preset functions (no YAML trees).

Presets follow KEMP (Li et al., AAAI 2022) and its released code (qtli/KEMP, which inherits
MoEL's defaults): hidden size 300, 1 encoder and 1 decoder layer, 2 heads with a total key/value
depth of 40, a feed-forward filter of 50, batch 16, Adam (0.9, 0.98, 1e-9) with the Transformer
warm-up schedule (factor 1, 8000 warm-up steps), label smoothing 0.1 on the generation loss,
at most 30 decoding steps, and the multi-task weights of Eq. 21.

Embeddings: the only vectors available offline are GloVe 6B **50d** (the paper used 300d). The
``kemp`` preset therefore keeps the word-embedding table at the vectors' own size
(``embedding_dim=50``, initialised from GloVe unchanged) and projects it to the hidden size (300)
with a learned linear map, as the official Encoder/Decoder do with their ``embedding_proj``; the
output layer is tied to the same table through a hidden->embedding projection, which also makes
the vocabulary softmax 6x cheaper than a 300-wide one. Passing 300d vectors to ``train`` sets
``embedding_dim`` to 300 (the resolved value is recorded in the run's ``config.json``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the network and its loss.

    Attributes:
        embedding_dim: width of the word-embedding table (GloVe's dimension when initialised
            from vectors); projected to ``hidden_dim`` when they differ.
        hidden_dim: model width (vertex, encoder and decoder states).
        num_heads: attention heads in graph, encoder, and decoder attention.
        attention_dim: total query/key/value depth over all heads (MoEL/KEMP "depth").
        ffn_dim: inner width of the position-wise feed-forward layers (KEMP "filter").
        graph_layers: multi-head graph attention layers over the context graph (Eq. 3-4).
        encoder_layers: transformer layers over all vertices (Eq. 5-6).
        decoder_layers: emotion-dependency decoder layers (Eq. 11-14).
        dropout: dropout after embeddings and in the transformer encoder/decoder layers (0 in
            ``kemp``: the official code builds MoEL's layers with all their dropouts at 0).
        graph_dropout: dropout on graph-attention weights and output (the official code's only
            active dropout; 0.2).
        use_knowledge: include concept vertices and graph attention (off in ``wo_ece`` and
            ``transformer``: the graph is the word sequence only).
        emotion_classifier: train the 32-way emotion head on c_e (Eq. 7-10).
        emotion_decoder: the emotion-dependency decoder: e_p projected as y_0, intensity-biased
            emotional cross-attention and the c_e concatenation (off in ``wo_edd``).
        attention_loss: the emotional attention loss (Eq. 15-16); needs ``emotion_decoder``.
        copy: the copy mechanism over graph vertices (Eq. 17-19).
        tie_embeddings: output projection shares the word-embedding table.
        emotion_weight, generation_weight, attention_weight: gamma of Eq. 21 (the official code
            adds emotion and generation losses with weight 1 and the attention loss times 0.1).
        emotion_loss_reduction: how the loss terms are combined. ``"official"`` (default): as
            the official code, the generation loss summed over tokens plus the emotion NLL summed
            over examples (one example weighs as much as one token), divided by the batch's token
            count; ``"sum"``: the token-averaged generation loss plus the batch-summed emotion NLL
            (the emotion term ~230x heavier than in the official code, as a batch of 16 ED
            examples holds ~233 target tokens: higher accuracy early, worse perplexity);
            ``"mean"``: token mean plus per-example mean.
        label_smoothing: smoothing of the generation loss during training (perplexity is always
            computed without it).
        max_decode_len: default maximum number of generated tokens.
    """

    embedding_dim: int = 50
    hidden_dim: int = 300
    num_heads: int = 2
    attention_dim: int = 40
    ffn_dim: int = 50
    graph_layers: int = 1
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.0
    graph_dropout: float = 0.2
    use_knowledge: bool = True
    emotion_classifier: bool = True
    emotion_decoder: bool = True
    attention_loss: bool = True
    copy: bool = True
    tie_embeddings: bool = True
    emotion_weight: float = 1.0
    generation_weight: float = 1.0
    attention_weight: float = 0.1
    label_smoothing: float = 0.1
    max_decode_len: int = 30
    emotion_loss_reduction: str = "official"

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "hidden_dim", "num_heads", "attention_dim", "ffn_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.attention_dim % self.num_heads:
            raise ValueError(
                f"attention_dim={self.attention_dim} is not divisible by num_heads={self.num_heads}"
            )
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.graph_dropout < 1.0):
            raise ValueError(
                f"dropout={self.dropout} and graph_dropout={self.graph_dropout} must be in [0, 1)"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.emotion_loss_reduction not in ("official", "sum", "mean"):
            raise ValueError(
                "emotion_loss_reduction must be 'official', 'sum' or 'mean', "
                f"got {self.emotion_loss_reduction!r}"
            )
        if self.attention_loss and not self.emotion_decoder:
            raise ValueError("attention_loss=True needs emotion_decoder=True")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: batches, optimiser, schedule, evaluation and stopping.

    Attributes:
        batch_size: GLOBAL examples per optimiser step (split evenly across DDP ranks).
        max_steps: optimiser steps to run (the paper's run is about 26,000 at batch 16).
        warmup_steps, noam_factor: the Transformer schedule
            ``lr = factor * hidden^-0.5 * min(step^-0.5, step * warmup^-1.5)``.
        adam_betas, adam_eps: Adam hyper-parameters.
        grad_clip: max gradient norm, 0 for none (the official code does not clip).
        eval_every: steps between validations and checkpoints.
        eval_examples: validate on at most this many examples (0 = the whole split).
        patience: stop after this many validations without a better perplexity (0 = never).
        log_every: steps between training-loss lines in ``metrics.jsonl``.
        bucket_batches: batches per length-sorting window of the sampler.
        seed: seeds parameters, dropout and the batch order.
        train_split, valid_split: split names in the graph file.
        bf16: bfloat16 autocast (CUDA only).
        compile: ``torch.compile`` each layer (any device; about a minute of compilation).
    """

    batch_size: int = 16
    max_steps: int = 26_000
    warmup_steps: int = 8000
    noam_factor: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-9
    grad_clip: float = 0.0
    eval_every: int = 1000
    eval_examples: int = 0
    patience: int = 5
    log_every: int = 10
    bucket_batches: int = 50
    seed: int = 0
    train_split: str = "train"
    valid_split: str = "valid"
    bf16: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "warmup_steps", "eval_every", "log_every",
                     "bucket_batches"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if self.patience < 0 or self.eval_examples < 0 or self.grad_clip < 0:
            raise ValueError(
                f"patience={self.patience}, eval_examples={self.eval_examples} and "
                f"grad_clip={self.grad_clip} must be >= 0"
            )


@dataclass(frozen=True)
class Preset:
    """A named pair of configurations."""

    name: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)


def kemp() -> Preset:
    """The full model with the paper's hyper-parameters (see the module docstring)."""
    return Preset("kemp", ModelConfig())


def wo_ece() -> Preset:
    """Ablation "w/o ECE": no emotional context encoder (no concepts, no graph attention)."""
    return Preset("wo-ece", ModelConfig(use_knowledge=False))


def wo_edd() -> Preset:
    """Ablation "w/o EDD": plain decoder (no e_p prefix, no emotional cross-attention/c_e)."""
    return Preset("wo-edd", ModelConfig(emotion_decoder=False, attention_loss=False))


def transformer() -> Preset:
    """Plain Transformer baseline with the copy mechanism: no knowledge, no emotion."""
    return Preset(
        "transformer",
        ModelConfig(
            use_knowledge=False,
            emotion_classifier=False,
            emotion_decoder=False,
            attention_loss=False,
            emotion_weight=0.0,
            attention_weight=0.0,
        ),
    )


def tiny() -> Preset:
    """A small full KEMP for tests and ``just demo`` (seconds on a CPU)."""
    return Preset(
        "tiny",
        ModelConfig(
            embedding_dim=16, hidden_dim=32, num_heads=2, attention_dim=16, ffn_dim=32,
            dropout=0.1, graph_dropout=0.1, label_smoothing=0.0,
        ),
        TrainConfig(
            batch_size=8, max_steps=200, warmup_steps=40, noam_factor=1.0, eval_every=50,
            log_every=5, bucket_batches=8,
        ),
    )  # fmt: skip


#: Preset name -> function. Names use dashes on the command line (``wo_ece`` works too).
PRESETS: Mapping[str, Callable[[], Preset]] = {
    "kemp": kemp,
    "wo-ece": wo_ece,
    "wo-edd": wo_edd,
    "transformer": transformer,
    "tiny": tiny,
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``wo_ece`` and ``wo-ece`` both work)."""
    key = name.replace("_", "-").lower()
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]()


def to_dict(config: ModelConfig | TrainConfig) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Inverse of :func:`to_dict` for :class:`ModelConfig`; unknown keys raise ``ValueError``."""
    return _from_dict(ModelConfig, data)


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :func:`to_dict` for :class:`TrainConfig`; unknown keys raise ``ValueError``."""
    return _from_dict(TrainConfig, data)


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)
