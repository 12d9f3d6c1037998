"""`blur`: privacy blur that cannot be undone.

Each mask component's bounding box is cut into blocks, every block is replaced by its mean
(a mosaic), and the mosaic is smoothed with a Gaussian of half a block so that no grid shows.
The result is a function of the block means alone: detail finer than a block is destroyed, not
merely attenuated, so no deblurring can read it back (unlike a plain Gaussian, which is invertible
up to noise). Block size scales with the region: `blocks_across` blocks over its longer side.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tasks.masks import mask_components
from tasks.settings import BLUR_ENGINE, BlurConfig
from tasks.stages import EditStage


def block_mosaic(region: np.ndarray, block: int) -> np.ndarray:
    """Replace each `block`x`block` tile (anchored top-left; edge tiles may be smaller) by its mean."""
    height, width = region.shape[:2]
    ys, xs = np.arange(0, height, block), np.arange(0, width, block)
    values = region.astype(np.float64)
    sums = np.add.reduceat(np.add.reduceat(values, ys, axis=0), xs, axis=1)
    counts = np.outer(np.diff(np.append(ys, height)), np.diff(np.append(xs, width)))
    means = sums / (counts if region.ndim == 2 else counts[..., None])
    return np.repeat(np.repeat(means, np.diff(np.append(ys, height)), axis=0), np.diff(np.append(xs, width)), axis=1)


class MosaicBlur(EditStage):
    """The engine of the privacy action (`action: blur`), not a removal engine."""

    kind = "clean"
    name = BLUR_ENGINE
    version = "1"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, settings: BlurConfig = BlurConfig()):
        self.blocks_across = settings.blocks_across
        self.min_block = settings.min_block

    @classmethod
    def from_config(cls, config) -> MosaicBlur:
        return cls(config.blur)

    def __call__(self, image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
        out = image.copy()
        for rows, cols in mask_components(mask, margin=0):
            region = image[rows, cols]
            longer = max(region.shape[:2])
            block = max(self.min_block, math.ceil(longer / self.blocks_across))
            mosaic = block_mosaic(region, block).astype(np.float32)
            smooth = cv2.GaussianBlur(mosaic, (0, 0), sigmaX=block / 2, borderType=cv2.BORDER_REPLICATE)
            out[rows, cols] = np.clip(np.rint(smooth), 0, 255).astype(np.uint8)
        return out
