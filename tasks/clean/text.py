"""`text`: remove text and watermarks by filling only their strokes, not their box.

The row's mask (a box, a polygon or a detector's line region) is first cut down to the letters'
pixels by `tasks.masks_text.refine_text_mask`; the thin stroke holes are then filled by fast
marching (A. Telea, J. Graphics Tools 2004) or Navier-Stokes (M. Bertalmio, A. Bertozzi,
G. Sapiro, CVPR 2001) inpainting. On a hole a few pixels wide either method draws from true
pixels on both sides of every stroke, so the photo between and around the letters is kept as it
was instead of being re-invented. Pixels of the mask outside the strokes are returned unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

from tasks.masks import mask_components
from tasks.masks_text import refine_text_mask
from tasks.settings import TextConfig
from tasks.stages import EditContext, EditStage

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


class TextRemover(EditStage):
    kind = "clean"
    name = "text"
    version = "1"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, settings: TextConfig = TextConfig()):
        self.settings = settings

    @classmethod
    def from_config(cls, config) -> TextRemover:
        return cls(config.text)

    def strokes(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The pixels this engine will change: the text's strokes inside `mask`."""
        return refine_text_mask(image, mask, grow=self.settings.grow, margin=self.settings.margin)

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext | None = None) -> np.ndarray:
        # The pipeline refines text masks in its Find step (so Clarify and Measure see the strokes
        # too); called on a box or line region directly, the engine refines it itself.
        strokes = mask if context is not None and context.strokes_refined else self.strokes(image, mask)
        out = image.copy()
        if not strokes.any():
            return out
        holes = strokes.astype(np.uint8)
        method = _METHODS[self.settings.method]
        for rows, cols in mask_components(strokes, 2 * self.settings.radius + 2):
            filled = cv2.inpaint(image[rows, cols], holes[rows, cols], self.settings.radius, method)
            hole = strokes[rows, cols] if image.ndim == 2 else strokes[rows, cols, None]
            out[rows, cols] = np.where(hole, filled, image[rows, cols])
        return out
