"""Clarify: restore high-frequency texture inside the filled region, after removal.

Runs after Clean and before Measure, on removal rows only: never before removing (the config
refuses that order) and never on a privacy blur, whose point is to hold no detail. A clarifier is
a stage of kind "clarify" with the one contract of `tasks/stages.py` (the Clean engines' too):
`(image, mask, context) -> image`, `run_many` over a partition's images, `shares_batches`, built
from its own config section by `from_config`, once per worker by `tasks.registry.get_stage`. The
caller composites inside the mask only, so every pixel outside it stays bit-identical. Whether the
fill already carries grain of its own comes in `context.fill_copies_grain` (the Clean engine's
`copies_grain`).

- `regrain` (default, no weights): noise-level-function matching (`regrain.py`).
- `sr`: any restoration/super-resolution model that spandrel loads, from weights the user
  provides (`sr.py`; needs `pip install clean-clarify[sr]`).
- `none`: pass-through.
"""

from __future__ import annotations

import numpy as np

from tasks.clarify.regrain import regrain_crop
from tasks.stages import EditContext, EditStage


class PassThrough(EditStage):
    kind = "clarify"
    name = "none"
    version = "1"  # bump when the output bytes change: finished work is keyed by it

    @classmethod
    def from_config(cls, config) -> PassThrough:
        return cls()

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray:
        return image


__all__ = ["PassThrough", "regrain_crop"]
