"""The loss component: reductions by hand, validation of its settings, and old run configs."""

from __future__ import annotations

import json

import pytest
import torch

from kemp_model import checkpoint as ckpt
from kemp_model.config import get_preset
from kemp_model.loss import Loss, LossConfig
from kemp_model.model import ModelOutput


def output() -> ModelOutput:
    zero = torch.tensor(0.0)
    return ModelOutput(
        generation_nll_sum=torch.tensor(6.0),
        smoothing_sum=zero,
        emotion_nll_sum=torch.tensor(8.0),
        attention_loss_sum=torch.tensor(2.0),
        token_count=torch.tensor(3),
        example_count=torch.tensor(4),
        emotion_correct=torch.tensor(0),
        example_mean_nll_sum=zero,
        scored_examples=torch.tensor(4),
        emotion_logits=torch.zeros(4, 32),
    )


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        # official: (summed token loss + summed emotion NLL + 0.1 x mean attention loss) / tokens
        ("official", (6 + 8 + 0.1 * 2 / 4) / 3),
        ("sum", 6 / 3 + 8 + 0.1 * 2 / 4),
        ("mean", 6 / 3 + 8 / 4 + 0.1 * 2 / 4),
    ],
)
def test_reductions_by_hand(reduction, expected) -> None:
    loss = Loss(LossConfig(reduction=reduction, label_smoothing=0.0), vocab_size=10)
    out = output()
    assert loss(out, out.token_count, out.example_count).item() == pytest.approx(expected)


def test_weights_scale_their_own_terms() -> None:
    loss = Loss(
        LossConfig(
            emotion_weight=0.5, generation_weight=2.0, attention_weight=0.0, label_smoothing=0.0
        ),
        vocab_size=10,
    )
    out = output()
    assert loss(out, 3, 4).item() == pytest.approx((2 * 6 + 0.5 * 8) / 3)


def test_settings_are_checked_with_the_value_named() -> None:
    assert LossConfig().reduction == "official"
    with pytest.raises(ValueError, match="'max'"):
        LossConfig(reduction="max")
    with pytest.raises(ValueError, match="attention_weight"):
        LossConfig(attention_weight=float("nan"))
    with pytest.raises(ValueError, match="label_smoothing"):
        LossConfig(label_smoothing=1.0)


def test_a_run_config_from_before_the_loss_config_still_loads(tmp_path) -> None:
    """Old config.json files kept the loss settings in "model" (``emotion_loss_reduction``)."""
    preset = get_preset("kemp-small")
    model = {k: v for k, v in ckpt.to_dict(preset.model).items()}
    model.update(
        emotion_weight=1.0,
        generation_weight=1.0,
        attention_weight=0.1,
        label_smoothing=0.1,
        emotion_loss_reduction="sum",
    )
    data = {
        "format": ckpt.FORMAT,
        "preset": "kemp",
        "model": model,
        "train": ckpt.to_dict(preset.train),
        "vocab_size": 12,
        "vocab_sha256": "x",
    }
    config = ckpt.RunConfig.from_json(json.loads(json.dumps(data)))
    assert config.loss == LossConfig(reduction="sum")
    assert config.model == preset.model
    again = ckpt.RunConfig.from_json(config.to_json())
    assert again == config and "emotion_loss_reduction" not in config.to_json()["model"]
