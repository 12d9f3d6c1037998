"""`telea`: the fast baseline. Fast marching inpainting, OpenCV's `INPAINT_TELEA`.

A. Telea, "An Image Inpainting Technique Based on the Fast Marching Method", J. Graphics Tools 2004.
It propagates a smooth average of the boundary inward: good for thin text on flat backgrounds,
a smudge on texture (the `exemplar` engine carries texture into the hole).
"""

from __future__ import annotations

import cv2
import numpy as np

from tasks.masks import mask_components
from tasks.settings import TeleaConfig
from tasks.stages import EditStage


class Telea(EditStage):
    kind = "clean"
    name = "telea"
    version = "1"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, settings: TeleaConfig = TeleaConfig()):
        self.radius = settings.radius
        # The crop margin must cover the radius, or the fill would see the crop edge as boundary.
        self.margin = max(settings.margin, 2 * self.radius)

    @classmethod
    def from_config(cls, config) -> Telea:
        return cls(config.telea)

    def __call__(self, image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
        out = image.copy()
        mask_u8 = mask.astype(np.uint8)
        for rows, cols in mask_components(mask, self.margin):
            out[rows, cols] = cv2.inpaint(image[rows, cols], mask_u8[rows, cols], self.radius, cv2.INPAINT_TELEA)
        return out
