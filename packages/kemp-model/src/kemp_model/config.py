"""Model and training configuration: frozen dataclasses and preset functions (no YAML trees).

Presets (docs/DESIGN.md §8):

* ``kemp``: the published model as the released code (qtli/KEMP, built on MoEL) runs it: hidden
  size 300, a 300-wide word table scaled by sqrt(300), 1 encoder and 1 decoder layer, 2 heads
  with a total key/value depth of 40, convolutional feed-forward blocks of width 50, dropout only
  in the graph layer (0.2), an untied output layer with a bias, Xavier initialisation, label
  smoothing 0.1 over the copy-mixed distribution, loss weights (1, 1, 0.1) combined as sums;
  batch 16, Adam (0.9, 0.98, 1e-9) with the Noam schedule (factor 1, 8000 warm-up steps); at
  most 26,000 steps with the official early stopping (validate every 2,000 steps, compare from
  step 13,000, stop after 3 validations without improvement, keep the best).
* ``wo-ece``, ``wo-edd``: the paper's ablations of ``kemp``.
* ``transformer``: MoEL's ``trs`` baseline as the paper's Transformer row: 2 encoder and 2
  decoder layers, no copy mechanism, no knowledge, no emotion head, otherwise as ``kemp``.
* ``kemp-small``, ``transformer-small``: the cheaper models earlier versions of this project
  shipped as ``kemp`` and ``transformer`` (a 50-wide word table tied to the output through a
  projection, linear feed-forwards, 1 + 1 layers): about 6x fewer parameters, for CPU users.
* ``tiny``: small dimensions for tests and ``just demo``.

Only GloVe 6B 50d is available offline (the paper used 300d); how 50d vectors fill the 300-wide
table is chosen by ``kemp-model train --embedding-placement`` (see
:meth:`kemp_model.embeddings.Vectors.placed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kemp_model.loss import LossConfig


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
        tie_embeddings: output projection shares the word-embedding table (through a
            hidden->embedding projection); False: an untied ``Linear(hidden, V)`` with a bias, as
            the official code runs.
        feed_forward: ``"conv"``: MoEL's block of two ``Conv1d`` of kernel 3 with a ReLU after
            each (padded on both sides in the encoder, on the left in the causal decoder), as the
            official code runs; ``"linear"``: Linear -> ReLU -> Linear.
        embedding_scale: multiply word embeddings by ``sqrt(embedding_dim)`` (the official
            ``Embeddings`` do; the emotion start vector y_0 is not scaled).
        init: ``"xavier"``: Xavier-uniform on every weight matrix but the word table, word rows
            ``N(0, 0.01^2)`` with pre-trained rows copied in unchanged (the official scheme);
            ``"normal"``: unit-normal word rows (pre-trained rows rescaled to unit std) and
            torch's default layer init.
        max_decode_len: default maximum number of generated tokens.

    The loss (Eq. 21's weights, label smoothing, reduction) is :class:`kemp_model.loss.LossConfig`.
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
    feed_forward: str = "linear"
    embedding_scale: bool = False
    init: str = "normal"
    max_decode_len: int = 30

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
        if self.feed_forward not in ("conv", "linear"):
            raise ValueError(f"feed_forward must be 'conv' or 'linear', got {self.feed_forward!r}")
        if self.init not in ("xavier", "normal"):
            raise ValueError(f"init must be 'xavier' or 'normal', got {self.init!r}")
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
        early_stopping_from: validations before this step are logged but neither keep a best
            checkpoint nor count towards ``patience`` (the official KEMP run: 13,000).
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
    early_stopping_from: int = 0
    log_every: int = 10
    bucket_batches: int = 50
    seed: int = 0
    train_split: str = "train"
    valid_split: str = "valid"
    bf16: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "max_steps",
            "warmup_steps",
            "eval_every",
            "log_every",
            "bucket_batches",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        if min(self.patience, self.eval_examples, self.grad_clip, self.early_stopping_from) < 0:
            raise ValueError(
                f"patience={self.patience}, eval_examples={self.eval_examples}, "
                f"grad_clip={self.grad_clip} and early_stopping_from={self.early_stopping_from} "
                "must be >= 0"
            )


@dataclass(frozen=True)
class Preset:
    """A named architecture, objective and training schedule."""

    name: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)


#: The official schedule: validate every 2,000 steps, compare from 13,000, patience 3.
OFFICIAL_TRAIN = TrainConfig(eval_every=2000, patience=3, early_stopping_from=13_000)

#: The released code's architecture (see the module docstring).
OFFICIAL_MODEL = ModelConfig(
    embedding_dim=300,
    tie_embeddings=False,
    feed_forward="conv",
    embedding_scale=True,
    init="xavier",
)


def kemp() -> Preset:
    """The published KEMP as the released code runs it (see the module docstring)."""
    return Preset("kemp", OFFICIAL_MODEL, OFFICIAL_TRAIN)


def wo_ece() -> Preset:
    """Ablation "w/o ECE": no emotional context encoder (no concepts, no graph attention)."""
    return Preset(
        "wo-ece", dataclasses.replace(OFFICIAL_MODEL, use_knowledge=False), OFFICIAL_TRAIN
    )


def wo_edd() -> Preset:
    """Ablation "w/o EDD": plain decoder (no e_p prefix, no emotional cross-attention/c_e)."""
    model = dataclasses.replace(OFFICIAL_MODEL, emotion_decoder=False, attention_loss=False)
    return Preset("wo-edd", model, OFFICIAL_TRAIN)


def transformer() -> Preset:
    """MoEL's ``trs`` baseline: 2 + 2 layers, no copy, no knowledge, no emotion head.

    MoEL validates every 2,000 steps with patience 3 and no late start of the comparison.
    """
    model = dataclasses.replace(
        OFFICIAL_MODEL,
        encoder_layers=2,
        decoder_layers=2,
        copy=False,
        use_knowledge=False,
        emotion_classifier=False,
        emotion_decoder=False,
        attention_loss=False,
    )
    train = dataclasses.replace(OFFICIAL_TRAIN, early_stopping_from=0)
    return Preset("transformer", model, train, LossConfig(emotion_weight=0.0, attention_weight=0.0))


def kemp_small() -> Preset:
    """The cheaper KEMP this project shipped before the official architecture: 50-wide word
    table (GloVe 50d's own width) projected to 300, output tied to it, linear feed-forwards,
    torch's default initialisation, validation every 1,000 steps with patience 5."""
    return Preset("kemp-small", ModelConfig())


def transformer_small() -> Preset:
    """The Transformer baseline at ``kemp-small``'s size (this project's earlier ``transformer``:
    1 + 1 layers with the copy mechanism, 50-wide tied word table, linear feed-forwards)."""
    model = ModelConfig(
        use_knowledge=False,
        emotion_classifier=False,
        emotion_decoder=False,
        attention_loss=False,
    )
    return Preset(
        "transformer-small", model, loss=LossConfig(emotion_weight=0.0, attention_weight=0.0)
    )


#: ``tiny`` validates on at most this many examples: a short run on a big file (ED's valid split
#: holds 5,736) would otherwise spend most of its time validating.
TINY_EVAL_EXAMPLES = 256


def tiny() -> Preset:
    """A small full KEMP for tests and ``just demo`` (seconds on a CPU)."""
    return Preset(
        "tiny",
        ModelConfig(
            embedding_dim=16,
            hidden_dim=32,
            num_heads=2,
            attention_dim=16,
            ffn_dim=32,
            dropout=0.1,
            graph_dropout=0.1,
        ),
        TrainConfig(
            batch_size=8,
            max_steps=200,
            warmup_steps=40,
            noam_factor=1.0,
            eval_every=50,
            log_every=5,
            bucket_batches=8,
            eval_examples=TINY_EVAL_EXAMPLES,
        ),
        LossConfig(label_smoothing=0.0),
    )


#: Preset name -> function. Names use dashes on the command line (``wo_ece`` works too).
PRESETS: Mapping[str, Callable[[], Preset]] = {
    "kemp": kemp,
    "wo-ece": wo_ece,
    "wo-edd": wo_edd,
    "transformer": transformer,
    "kemp-small": kemp_small,
    "transformer-small": transformer_small,
    "tiny": tiny,
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``wo_ece`` and ``wo-ece`` both work)."""
    key = name.replace("_", "-").lower()
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]()


def to_dict(config: ModelConfig | TrainConfig | LossConfig) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Inverse of :func:`to_dict` for :class:`ModelConfig`; unknown keys raise ``ValueError``."""
    return _from_dict(ModelConfig, data)


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :func:`to_dict` for :class:`TrainConfig`; unknown keys raise ``ValueError``."""
    return _from_dict(TrainConfig, data)


def loss_config_from_dict(data: Mapping[str, Any]) -> LossConfig:
    """Inverse of :func:`to_dict` for :class:`LossConfig`; unknown keys raise ``ValueError``."""
    return _from_dict(LossConfig, data)


#: Loss settings that run configs written before :class:`LossConfig` existed kept in "model",
#: with their name in :class:`LossConfig`.
LEGACY_LOSS_FIELDS = {
    "emotion_weight": "emotion_weight",
    "generation_weight": "generation_weight",
    "attention_weight": "attention_weight",
    "label_smoothing": "label_smoothing",
    "emotion_loss_reduction": "reduction",
}


def split_legacy_model_dict(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model fields, loss fields)`` of a stored "model" object that may still hold the loss
    settings (run folders written before the loss became its own config)."""
    model = {k: v for k, v in data.items() if k not in LEGACY_LOSS_FIELDS}
    loss = {LEGACY_LOSS_FIELDS[k]: v for k, v in data.items() if k in LEGACY_LOSS_FIELDS}
    return model, loss


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)
