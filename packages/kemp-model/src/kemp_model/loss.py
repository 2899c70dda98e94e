"""The training objective of Eq. 21 as one component: weights, label smoothing and reduction.

The model's forward pass returns *sums and counts* only (:class:`~kemp_model.model.ModelOutput`):
the summed NLL of the reference tokens, the summed label-smoothing term, the summed emotion NLL,
the summed attention loss, and the token and example counts. :class:`Loss` turns them into the
scalar that is differentiated. Keeping the policy here, and nowhere else, means a batch split
over DDP ranks is combined with *global* counts by the same code that a single process uses.

Generation loss with label smoothing ``eps`` (as the official code, MoEL's ``LabelSmoothing``
with ``KLDivLoss(reduction='sum')``): the target distribution puts ``1 - eps`` on the reference
token, ``0`` on PAD, and ``eps / (V - 2)`` on every other word; the loss per token is the KL
divergence from it to the model's (copy-mixed) distribution ``p``::

    KL = -(1 - eps) log p_y - eps/(V-2) sum_{v != y, PAD} log p_v + H_const
    H_const = (1 - eps) log(1 - eps) + eps log(eps / (V - 2))

The model supplies ``sum_tokens -log p_y`` (``generation_nll_sum``) and
``sum_tokens -1/(V-2) sum_{v != y, PAD} log p_v`` (``smoothing_sum``); the constant makes the
logged training loss equal the official KL value, and has no gradient.

Reductions (``LossConfig.reduction``): how the terms are normalised before they are added.

* ``official`` (default): the released code sums the generation loss over tokens and the
  emotion NLL over examples, and adds gamma_att times the mean attention loss (one example's
  emotion NLL weighs as much as one token's NLL). We divide that total by the batch's token
  count, which Adam cannot tell from the plain sum, so the logged loss is per token.
* ``sum``: token-mean generation loss plus the batch-summed emotion NLL (the emotion term about
  230x heavier than in the official code on EmpatheticDialogues batches of 16).
* ``mean``: token-mean generation loss plus per-example mean emotion NLL.

The attention loss (Eq. 15-16) enters as its per-example mean, weighted by gamma_att.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the model module needs nothing from here
    from kemp_model.model import ModelOutput

#: Names of the reductions :class:`LossConfig` accepts.
REDUCTIONS = ("official", "sum", "mean")


@dataclass(frozen=True)
class LossConfig:
    """Eq. 21's weights (gamma), the generation loss's label smoothing, and the reduction.

    Attributes:
        emotion_weight: gamma_emo on the emotion NLL (Eq. 10).
        generation_weight: gamma_gen on the generation loss (Eq. 20).
        attention_weight: gamma_att on the emotional attention loss (Eq. 16).
        label_smoothing: eps of the generation loss (0 = plain NLL); perplexity never includes it.
        reduction: ``official``, ``sum`` or ``mean`` (see the module docstring).
    """

    emotion_weight: float = 1.0
    generation_weight: float = 1.0
    attention_weight: float = 0.1
    label_smoothing: float = 0.1
    reduction: str = "official"

    def __post_init__(self) -> None:
        for name in ("emotion_weight", "generation_weight", "attention_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"LossConfig.{name} must be a finite number >= 0, got {value}")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(
                f"loss reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}"
            )


@dataclass(frozen=True)
class Loss:
    """Eq. 21 from a forward pass's sums and the (global) counts that normalise them.

    Args:
        config: the weights, smoothing and reduction.
        vocab_size: ``V`` (the smoothing constant depends on it).
    """

    config: LossConfig
    vocab_size: int

    @property
    def smoothing(self) -> bool:
        """Whether the forward pass must compute the smoothing term."""
        return self.config.label_smoothing > 0

    def generation_sum(self, out: ModelOutput) -> torch.Tensor:
        """The (smoothed) generation loss summed over the batch's tokens."""
        eps = self.config.label_smoothing
        if eps == 0:
            return out.generation_nll_sum
        spread = max(self.vocab_size - 2, 1)
        constant = (1 - eps) * math.log(1 - eps) + eps * math.log(eps / spread)
        return (
            (1 - eps) * out.generation_nll_sum
            + eps * out.smoothing_sum
            + constant * out.token_count
        )

    def __call__(
        self,
        out: ModelOutput,
        token_count: torch.Tensor | float,
        example_count: torch.Tensor | float,
    ) -> torch.Tensor:
        """The scalar to differentiate, normalised by the given (global) counts."""
        cfg = self.config
        generation = cfg.generation_weight * self.generation_sum(out)
        emotion = cfg.emotion_weight * out.emotion_nll_sum
        attention = cfg.attention_weight * out.attention_loss_sum / example_count
        if cfg.reduction == "official":
            return (generation + emotion + attention) / token_count
        emotion_normaliser = 1.0 if cfg.reduction == "sum" else example_count
        return generation / token_count + emotion / emotion_normaliser + attention


__all__ = ["REDUCTIONS", "Loss", "LossConfig"]
