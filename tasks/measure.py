"""Measure: per-image figures recorded in the release manifest.

Reference-free texture and structure metrics arrive with the Measure issue; these are the
invariants every edit must keep.
"""

from __future__ import annotations

import numpy as np


def mask_fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else 0.0


def outside_changed(original: np.ndarray, final: np.ndarray, mask: np.ndarray) -> int:
    """Pixels outside `mask` whose value differs in any channel (must be 0)."""
    differs = original != final
    if differs.ndim == 3:
        differs = differs.any(axis=-1)
    return int(np.count_nonzero(differs & ~mask))
