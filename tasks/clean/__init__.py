"""Clean: the engines that change pixels inside the mask, each a stage of kind "clean".

Every engine keeps the one contract of `tasks/stages.py` (the clarifiers and detectors keep it too):
a `name` and a `version`, `copies_grain` when its fill carries grain of its own (exemplar, lama),
`__call__(image, mask, context) -> image`, `run_many` over several images of a partition (a loop
by default; exemplar and lama batch their crops across images, and say so by `shares_batches`),
and `from_config(config)`, which builds it from its own config section. `tasks.registry.STAGES`
lists them all, the privacy action's `blur` included; `get_stage` builds each once per worker
process (models load once).

- `image`: HxWx3 (RGB) or HxW (grey) uint8, upright, full resolution;
- `mask`: HxW bool, True = edit;
- returns an array of the same shape and dtype.

Engines may change pixels outside the mask (a crop-based method often does); the caller
composites the result inside the mask only (`composite`), so the outside stays bit-identical
whatever an engine does.
"""

from __future__ import annotations

import numpy as np

from tasks.stages import EditContext

__all__ = ["EditContext", "composite"]


def composite(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`edited` inside `mask`, `original` everywhere else, bit for bit."""
    if edited.shape != original.shape or edited.dtype != original.dtype:
        raise ValueError(f"engine returned {edited.dtype} {edited.shape}, expected {original.dtype} {original.shape}")
    out = original.copy()
    # Copy the mask's pixels by their flat index: a full-frame np.where costs 30 ms on 4 MP, this 10.
    index = np.flatnonzero(mask)
    pixels = out.reshape(mask.size, -1)
    pixels[index] = edited.reshape(pixels.shape)[index]
    return out
