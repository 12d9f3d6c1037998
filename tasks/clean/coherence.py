"""Coherence transport: a hole filled from its edge inward, each pixel a weighted mean of the known
pixels near it, weighted along the photo's own lines (F. Bornemann, T. März, "Fast image
inpainting based on coherence transport", J. Math. Imaging Vision 28, 2007).

Fast marching (Telea's order and weights) fills a hole from its edge too, but its weights see only
distance, so a wire, a bar or a plank line that crosses a letter stops at the letter's edge and the
two ends are smeared together: the letter's shape is left as a gap in the line. Here the direction
of the lines is read off the known pixels (the structure tensor, by normalised convolution so the
hole's own pixels count for nothing) and the weights fall off across it, so the line goes through.
Where the photo has no direction (grain, foliage) the weights are round and the fill is a diffusion.

Fast marching's order is taken in onion layers (the distance to the hole's edge, one pixel a layer),
each layer filled in one vectorised step from the pixels already known."""

from __future__ import annotations

import cv2
import numpy as np

from tasks.probes import normalised_blur

EPSILON = 5  # px: the radius a pixel is filled from
GUIDANCE = 25.0  # how sharply a coherent line steers the weights (Bornemann and März's mu)
SIGMA = 1.5  # px: the smoothing under the gradients (grain is not a line)
RHO = (4.0, 48.0)  # px: the reach of the tensor's average, half the hole's depth within these bounds


def line_directions(image: np.ndarray, holes: np.ndarray, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors (x, y) along the photo's lines, their coherence 0-1), both HxW, read from the
    pixels outside `holes` alone and carried over the holes by the tensor's average."""
    known = ~holes
    planes = image.astype(np.float32).reshape(*holes.shape, -1)
    smooth = normalised_blur(planes, known, SIGMA).reshape(planes.shape)
    # A gradient that reaches into the hole reads the hole's edge as a line of its own.
    valid = cv2.erode(known.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    tensor = np.zeros((3, *holes.shape), np.float32)
    for c in range(planes.shape[-1]):
        gx = cv2.Sobel(smooth[..., c], cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(smooth[..., c], cv2.CV_32F, 0, 1, ksize=3)
        tensor += np.stack([gx * gx, gx * gy, gy * gy])
    rho = float(np.clip(depth / 2, *RHO))
    jxx, jxy, jyy = (normalised_blur(t, valid, rho) for t in tensor)
    spread = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    coherence = np.clip((spread / np.maximum(jxx + jyy, 1e-6)) ** 2, 0.0, 1.0)
    # The tensor's main axis runs across the lines; the lines run at right angles to it.
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2
    return np.stack([np.cos(angle), np.sin(angle)], -1), coherence


def coherence_fill(values: np.ndarray, holes: np.ndarray, guide: np.ndarray | None = None) -> np.ndarray:
    """`values` (HxW or HxWxC) with `holes` (HxW, nonzero: unknown) filled, as float32; the pixels
    outside the holes are returned as they are. `guide`: the photo whose lines steer the fill (by
    default `values` itself; a clone's correction is steered by the photo, not by the difference)."""
    holes = np.asarray(holes) > 0
    out = values.astype(np.float32)
    if not holes.any() or holes.all():  # nothing to fill, or nothing to fill it from
        return out
    planes = out.reshape(*holes.shape, -1)
    depth = cv2.distanceTransform(holes.astype(np.uint8), cv2.DIST_L2, 5)
    along, coherence = line_directions(values if guide is None else guide, holes, float(depth.max()))
    oy, ox = np.mgrid[-EPSILON:EPSILON + 1, -EPSILON:EPSILON + 1]
    disk = (oy**2 + ox**2 <= EPSILON**2) & ((oy != 0) | (ox != 0))
    oy, ox = oy[disk], ox[disk]
    distance = np.sqrt(oy**2 + ox**2).astype(np.float32)
    height, width = holes.shape
    known = ~holes
    layers = np.ceil(depth).astype(np.int32)
    for layer in range(1, int(layers.max()) + 1):
        ys, xs = np.nonzero(holes & (layers == layer))
        if not len(ys):
            continue
        ny, nx = ys[:, None] + oy, xs[:, None] + ox
        usable = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        ny, nx = np.clip(ny, 0, height - 1), np.clip(nx, 0, width - 1)
        usable &= known[ny, nx]
        direction = along[ys, xs]
        across = oy * direction[:, :1] - ox * direction[:, 1:]  # the offset's reach across the line
        sharpness = 1.0 + GUIDANCE * coherence[ys, xs, None]
        weight = np.exp(-((sharpness * across) ** 2) / (2 * EPSILON**2)) / distance * usable
        # Far out along a steep line no known pixel may lie inside the band: then round weights.
        flat = weight.sum(1) <= 1e-12
        weight[flat] = usable[flat] / distance
        total = np.maximum(weight.sum(1), 1e-12)
        planes[ys, xs] = np.einsum("nm,nmc->nc", weight, planes[ny, nx]) / total[:, None]
        known[ys, xs] = True
    return out
