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


def on_diffused_base(image: np.ndarray, filled: np.ndarray, mask: np.ndarray, sigma: float = 4.0,
                     radius: int = 5) -> np.ndarray:
    """`filled`'s detail on a base diffused from the hole's edge: inside `mask`, the Gaussian (`sigma`)
    low-pass of fast marching's fill plus what the same low-pass takes out of `filled`.

    A texture fill copies patches whose local mean need not meet the photo's at the hole's edge; on
    smooth backgrounds (bokeh, sky) the step reads as an outline of the hole. Diffusion meets the
    edge by construction but has no detail: the sum keeps the edge of one and the grain of the other
    (a two-band blend, P. Burt and E. Adelson, ACM ToG 1983). Outside `mask` the image is returned
    as it was."""
    out = image.copy()
    pad = int(3 * sigma) + 2 * radius
    for rows, cols in mask_components(mask, pad):
        hole = mask[rows, cols]
        known = image[rows, cols]
        where = hole if known.ndim == 2 else hole[..., None]
        texture = np.where(where, filled[rows, cols], known).astype(np.float32)
        base = cv2.inpaint(known, hole.astype(np.uint8), radius, cv2.INPAINT_TELEA).astype(np.float32)
        low = cv2.GaussianBlur(base, (0, 0), sigma)
        # The fill's own low-pass from its pixels alone (normalised convolution): a step between the
        # fill and the photo at the edge is not detail, it is the seam this takes away.
        weight = cv2.GaussianBlur(hole.astype(np.float32), (0, 0), sigma)
        inside = cv2.GaussianBlur(texture * (where if texture.ndim == 3 else hole), (0, 0), sigma)
        weight = weight if texture.ndim == 2 else weight[..., None]
        detail = texture - inside / np.maximum(weight, 1e-6)
        blended = np.clip(np.rint(low + detail), 0, 255).astype(image.dtype)
        out[rows, cols] = np.where(where, blended, known)
    return out
