"""Which torch device a command runs on: one rule for train, evaluate, generate and chat."""

from __future__ import annotations

import os

import torch

from kemp_model.errors import KempModelError

#: What ``--device`` accepts.
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str = "auto") -> torch.device:
    """The device called ``name``.

    ``auto`` is CUDA when torch sees a GPU, else the CPU. ``cuda`` is the GPU of this process:
    ``LOCAL_RANK`` under ``torchrun``, else GPU 0. ``cuda:N`` is GPU ``N``.

    Raises:
        KempModelError: an unknown name, CUDA asked for where torch sees none, or a GPU index
            past the last one.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise KempModelError(
                f"--device {name}: no CUDA device visible to torch; use --device cpu"
            )
        index_text = name.partition(":")[2] or os.environ.get("LOCAL_RANK", "0")
        if not index_text.isdigit():
            raise KempModelError(f"--device {name}: use {DEVICE_CHOICES}")
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise KempModelError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device("cuda", index)
    raise KempModelError(f"--device {name}: use {DEVICE_CHOICES}")


__all__ = ["DEVICE_CHOICES", "resolve_device"]
