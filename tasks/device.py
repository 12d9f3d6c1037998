"""Where tensors run: CUDA when present (and allowed by the config), else the CPU."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@functools.cache
def pick_device(setting: str = "auto") -> torch.device:
    import torch  # here, not at the top: reading a config (which resolves the device lazily) needs no torch

    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if setting == "cuda":
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device("cpu")
