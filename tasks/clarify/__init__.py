"""Clarify: restore high-frequency texture inside the filled region, after removal.

Runs after Clean and before Measure, on removal rows only: never before removing (the config
refuses that order) and never on a privacy blur, whose point is to hold no detail. A clarifier
has the engines' contract, `(image, mask, context) -> image`; the caller composites inside the
mask only, so every pixel outside it stays bit-identical.

- `regrain` (default, no weights): noise-level-function matching (`regrain.py`).
- `sr`: any restoration/super-resolution model that spandrel loads, from weights the user
  provides (`sr.py`; needs `pip install clean-clarify[sr]`).
- `none`: pass-through.
"""

from __future__ import annotations

import numpy as np

from tasks.clarify.regrain import Regrain, regrain_crop
from tasks.clarify.sr import LearnedEnhancer
from tasks.workers import worker_instance


class PassThrough:
    name = "none"
    version = "1"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, config):
        pass

    def __call__(self, image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
        return image


CLARIFIERS: dict[str, type] = {PassThrough.name: PassThrough, Regrain.name: Regrain, LearnedEnhancer.name: LearnedEnhancer}


def get_clarifier(name: str, config):
    """The worker-wide instance of clarifier `name` for this config (built on first use)."""
    return worker_instance(CLARIFIERS[name], config)


__all__ = ["CLARIFIERS", "get_clarifier", "regrain_crop"]
