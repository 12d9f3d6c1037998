"""Where tensors run: CUDA when present (and allowed by the config), else the CPU."""

from __future__ import annotations

import functools

import torch


@functools.cache
def pick_device(setting: str = "auto") -> torch.device:
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if setting == "cuda":
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device("cpu")
