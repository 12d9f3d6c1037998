"""Clarify: restore high-frequency texture inside the filled region, after removal.

The hook runs after Clean and before Measure, on removal rows only (never before removing, and
never on a privacy blur, whose point is to have no detail). Its contract is the engines' one,
`(image, mask, context) -> image`, and the caller composites inside the mask only.
`none` passes the fill through unchanged; the Clarify issue adds noise-matched re-graining.
"""

from __future__ import annotations

import numpy as np


def passthrough(image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
    return image


CLARIFIERS = {"none": passthrough}
