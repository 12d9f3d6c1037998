"""`text`: remove text and watermarks by filling only their strokes, each by the method its width needs.

The row's mask (a box, a polygon or a detector's line region) is first cut down to the letters'
pixels by `tasks.masks_text.refine_text_mask` (a mask file the user drew is never cut: it is the
floor of the edit). With `text.unblend` (off by default), semi-transparent strings are first taken
off by inverting their blend (`tasks.clean.unblend`): where one opacity and colour explain their
cores, the photo under them is measured, not guessed. Each connected part of what is left of the
hole, a pixel wider (`BLEED`: a JPEG carries the letters' colour a pixel past them, and a fill pinned
to that pixel is drawn back in their colour), is then filled by the method that suits its width:

- thin strokes (at most `telea_width` px across: small captions, outlines, hairlines) by fast
  marching (A. Telea, J. Graphics Tools 2004) or Navier-Stokes (M. Bertalmio, A. Bertozzi,
  G. Sapiro, CVPR 2001) inpainting: on a hole a few pixels wide either draws from true pixels on
  both sides of every stroke, and nothing is re-invented;
- wider strokes (the 10-25 px letters of 56-160 px listing text, a whole box where no strokes
  could be told from the photo) by `patch_fill`: PatchMatch (C. Barnes et al., SIGGRAPH 2009) on
  the photo round each piece, other letters neither filled nor copied, so the photo's texture at
  every scale (fibres, feathers, rock, bokeh) runs on through them; `clone_fill` (`text.wide_fill:
  clone`) instead lays the grain of a shifted copy over the photo's lines and shading carried
  across from the edge by coherence transport (`tasks.clean.coherence`), which is smooth inside
  each letter and on a busy photo leaves a blob in its shape;
- except wide letters over a smooth photo (a sky, a wall, a dark cloud: `text.smooth_grain`),
  filled from their edge alone by `membrane_fill`: there the transport is what the photo holds,
  and Clarify's regrain gives it the camera's grain.

The thin parts are filled first, so a wide fill may copy from them once they hold no letters. Pixels
of the mask outside the strokes are returned unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np
from patchmatch import patch_match

from tasks.clean.coherence import coherence_fill
from tasks.clean.unblend import unblend
from tasks.masks import mask_components
from tasks.masks_text import refine_text_mask
from tasks.probes import luminance
from tasks.settings import TextConfig
from tasks.stages import EditContext, EditStage

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def split_by_width(holes: np.ndarray, thin_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(thin, wide): the connected parts of `holes` at most `thin_width` px across, and the rest.

    A part's width is twice the 90th percentile of its distance to the outside: a letter's
    junctions and serifs are wider than its strokes, and one blob must not make it wide."""
    thin = np.zeros_like(holes, dtype=bool)
    if not holes.any():
        return thin, thin.copy()
    for rows, cols in mask_components(holes, 1):
        part = holes[rows, cols]
        count, labels = cv2.connectedComponents(part.astype(np.uint8), connectivity=8)
        depth = cv2.distanceTransform(np.pad(part, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        index = labels.ravel()
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(1, count + 1))
        values = depth.ravel()[order]
        for label in range(1, count):
            widths = values[bounds[label - 1]:bounds[label]]
            if 2.0 * float(np.percentile(widths, 90)) <= thin_width:
                thin[rows, cols] |= labels == label
    return thin, holes & ~thin


BLEED = 1  # px past a mask that a JPEG's letters still colour: the fill is pinned beyond it
CLONE_REACH = (1.25, 1.6, 2.0, 2.5, 3.0)  # candidate shifts' lengths, in the group's heights
CLONE_DIRECTIONS = 16  # and their directions, evenly round: a texture's grain runs its own way
DETAIL_SIGMA = 3.0  # px: a clone copies the photo's departure from a Gaussian of this size, its grain and fine texture
PATCH_RADIUS = 3  # px: PatchMatch's patches are 7x7, a stroke's width or less, so its texture is matched, not its shape
PATCH_REACH = 1.5  # the photo round a piece that PatchMatch copies from, in the piece's heights (and 16 px more)
PATCH_SEED = 0
MEMBRANE_REACH = 16  # px: more than the transport's radius (5) and the median window (2) together
OUTLIER = 16.0  # grey levels: an edge difference this far from its 5x5 median is a hairline of letter, not photo


def _shifted(image: np.ndarray, dy: int, dx: int, box: tuple[slice, slice]) -> np.ndarray:
    """`image` moved by (dy, dx) over `box` (rows, cols): out[y, x] = image[y + dy, x + dx], edges repeated."""
    height, width = image.shape[:2]
    ys = np.clip(np.arange(box[0].start, min(box[0].stop, height)) + dy, 0, height - 1)
    xs = np.clip(np.arange(box[1].start, min(box[1].stop, width)) + dx, 0, width - 1)
    return image[ys][:, xs]


def clone_fill(image: np.ndarray, hole: np.ndarray, avoid: np.ndarray, ring: int = 6) -> np.ndarray:
    """`hole` filled by the photo beside it, as a retoucher's clone stamp does, blended in the
    gradient domain: the copy's grain and fine texture (its departure from a Gaussian of
    DETAIL_SIGMA) are kept, and the difference along the hole's edge is carried across it (P. Pérez
    et al., "Poisson image editing", SIGGRAPH 2003, here with coherence transport as the membrane,
    steered by the photo's lines), so no seam is left and the photo's lines run on through.

    The source is the hole moved by a few of its heights in one of `CLONE_DIRECTIONS` directions:
    the shift whose copy of the hole's `ring` matches the ring best, among those that take no
    pixel of the hole itself or of `avoid` (other letters) into it; where none does, `membrane_fill`.
    `image`: a crop (HxWxC or HxW uint8)."""
    ys, xs = np.nonzero(hole)
    height, width = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    # The edge is photo only: another letter beside the hole (not yet filled, or filled by fast
    # marching) says nothing of what the copy must meet, and pinned to its ink the membrane would
    # pull the fill to the ink's colour (a dark blob where a long word's pieces meet).
    near = cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1,) * 2)) > 0
    edge = near & ~hole & ~avoid
    if not edge.any():
        edge = near & ~hole
    pixels = image.astype(np.float32).reshape(*hole.shape, -1)
    taken = avoid | hole
    ey, ex = np.nonzero(edge)
    last_y, last_x = hole.shape[0] - 1, hole.shape[1] - 1
    best = None
    side = min(height, width)  # a line's height: shifts of a few heights, any direction
    for reach in CLONE_REACH:
        for k in range(CLONE_DIRECTIONS):
            angle = 2 * np.pi * k / CLONE_DIRECTIONS
            dy, dx = round(reach * side * np.sin(angle)), round(reach * side * np.cos(angle))
            inside = (ys.min() + dy >= 0 and ys.max() + dy <= last_y
                      and xs.min() + dx >= 0 and xs.max() + dx <= last_x)
            # Only the hole's and the edge's pixels are read: a shift costs what they hold, not the crop.
            if not inside or taken[ys + dy, xs + dx].any():
                continue
            moved = pixels[np.clip(ey + dy, 0, last_y), np.clip(ex + dx, 0, last_x)]
            cost = float(np.mean((moved - pixels[ey, ex]) ** 2))
            if best is None or cost < best[0]:
                best = (cost, dy, dx)
    if best is None:
        # No copy of the hole fits in the crop without taking letters (a whole line region): filled
        # from its edge, rather than left with its letters.
        return membrane_fill(image, hole, avoid)
    out = pixels.copy()
    # The membrane is pinned to the edge's differences, less their outliers: the pixels right at the
    # edge may hold a hairline the mask missed of the letters (an outline's outer anti-aliasing), and
    # pinned to it the whole fill takes the letters' colour, their shape drawn back.
    box, holes, halo = _membrane_box(hole, avoid)
    hole = hole[box]
    source = _shifted(pixels, best[1], best[2], box)
    # Only the copy's grain and fine texture are taken: what it holds at a letter's own scale (a
    # blob, a bar, a cloud's edge a few heights away) would be drawn in the letter's shape, and the
    # photo's own lines and shading come across the hole from its edge instead (`coherence_fill`).
    source = source - cv2.GaussianBlur(source, (0, 0), DETAIL_SIGMA).reshape(source.shape)
    difference = _pinned_edge(pixels[box] - source, holes, halo)
    correction = coherence_fill(difference, holes, guide=pixels[box])
    out[box][hole] = (source + correction)[hole]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(image.shape)


def patch_fill(image: np.ndarray, hole: np.ndarray, avoid: np.ndarray) -> np.ndarray:
    """`hole` filled by PatchMatch (C. Barnes et al., "PatchMatch", SIGGRAPH 2009: a hole's patches
    voted from their nearest patches of the photo, coarse to fine) on a crop reaching PATCH_REACH of
    the hole's height round it; `avoid` (other letters) is neither filled nor copied from.

    The texture is the photo's own at every scale: fibres, feathers and rock run on through the
    letters. `clone_fill` takes only a copy's fine detail over a membrane pinned to the edge, and on
    a busy photo its smooth membrane is left as a blob in each letter's shape (listing row 027)."""
    ys, xs = np.nonzero(hole)
    side = min(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    reach = int(PATCH_REACH * side) + 16
    box = (slice(max(0, ys.min() - reach), ys.max() + reach + 1), slice(max(0, xs.min() - reach), xs.max() + reach + 1))
    crop, inside = image[box], hole[box]
    rgb = crop if crop.ndim == 3 else np.repeat(crop[..., None], 3, 2)
    # One seed for every call: the same row gives the same bytes, whatever ran before it.
    patch_match.set_random_seed(PATCH_SEED)
    filled = patch_match.inpaint(np.ascontiguousarray(rgb), inside.astype(np.uint8),
                                 global_mask=(avoid[box] & ~inside).astype(np.uint8), patch_size=PATCH_RADIUS)
    out = image.copy()
    out[box][inside] = filled[inside] if image.ndim == 3 else filled[inside][:, 0]
    return out


def membrane_fill(image: np.ndarray, hole: np.ndarray, avoid: np.ndarray) -> np.ndarray:
    """`hole` filled from its edge alone: `clone_fill`'s membrane with nothing copied under it, a
    coherence transport pinned to the edge less its outliers (a hairline of letter the mask missed).

    For letters over a smooth photo (a sky, a wall, a dark cloud): there the transport is what the
    photo holds under them, and Clarify's regrain gives it the camera's grain back."""
    # Letters farther than MEMBRANE_REACH are left out: filled one by one, a line's letters would each
    # cost the transport over all the others.
    box, holes, halo = _membrane_box(hole, avoid, near=True)
    hole = hole[box]
    # With nothing copied the membrane is the photo itself: every channel in one pass.
    filled = coherence_fill(_pinned_edge(image[box], holes, halo), holes).reshape(image[box].shape)
    out = image.copy()
    out[box][hole] = np.clip(np.rint(filled[hole]), 0, 255).astype(np.uint8)
    return out


def _pinned_edge(values: np.ndarray, holes: np.ndarray, halo: np.ndarray) -> np.ndarray:
    """`values` (HxW or HxWxC, uint8 or float32) around `holes` with the edge's outliers, a pixel any
    channel of which is more than OUTLIER from its 5x5 median (the holes seen filled from the `halo`
    out), replaced by that median in every channel, and zero in the holes: what the membrane is pinned to."""
    planes = values.reshape(*holes.shape, -1)
    median = np.empty(planes.shape, np.float32)
    for c in range(planes.shape[-1]):
        plane = np.ascontiguousarray(planes[..., c])
        rough = cv2.inpaint(np.where(halo > 0, 0, plane).astype(plane.dtype), halo, 5, cv2.INPAINT_TELEA)
        rough[holes == 0] = plane[holes == 0]
        median[..., c] = cv2.medianBlur(rough, 5)
    # Only outliers are replaced: everywhere else the fill meets the edge's own pixels, or it would
    # leave a step of the texture's size all round the hole. Per pixel, not per channel: one channel
    # replaced and the others kept tints the whole fill (a green or an orange blob in a grey photo).
    outlier = (np.abs(planes.astype(np.float32) - median) > OUTLIER).any(axis=-1, keepdims=True)
    pinned = np.where(outlier, median, planes).astype(values.dtype)
    pinned[holes > 0] = 0
    return pinned.reshape(values.shape)


def _membrane_box(hole: np.ndarray, avoid: np.ndarray, near: bool = False) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """The box the membrane is worked out on, and the holes (`hole` and `avoid`) and their 2 px halo
    over it; `near`: the box reaches as far as `hole` needs, not as far as every letter of `avoid`."""
    holes = (hole | avoid).astype(np.uint8)  # the membrane is found over the other letters too, whole
    # The median's window across the edge sees the hole as filled from two pixels further out.
    halo = cv2.dilate(holes, np.ones((5, 5), np.uint8))
    # The membrane reads nothing further than MEMBRANE_REACH from the halo (the transport's radius, the
    # median's window): worked out on that box alone, at a fraction of the crop's cost.
    hy, hx = np.nonzero(cv2.dilate(hole.astype(np.uint8), np.ones((5, 5), np.uint8)) if near else halo)
    box = (slice(max(0, hy.min() - MEMBRANE_REACH), hy.max() + MEMBRANE_REACH + 1),
           slice(max(0, hx.min() - MEMBRANE_REACH), hx.max() + MEMBRANE_REACH + 1))
    return box, holes[box], halo[box]


class TextRemover(EditStage):
    kind = "clean"
    name = "text"
    version = "9"  # bump when the output bytes change: finished work is keyed by it (9: wide strokes by PatchMatch)

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
        original, letters = image, strokes
        out = image.copy()
        if not strokes.any():
            return out
        recovered = np.zeros_like(strokes)
        if self.settings.unblend:
            # Semi-transparent letters: the photo under their cores is measured, not guessed, and
            # the fills below draw on it as on any photo.
            image, recovered = unblend(image, strokes)
            out = image.copy()
            strokes = strokes & ~recovered
        # A JPEG carries the letters' colour a pixel past their edge (its chroma is stored at half
        # resolution, its blocks ring): a mask drawn to the letters' own pixels has that pixel all round
        # it, and a fill pinned to it draws the letters back in their colour. The holes are filled a
        # pixel wider, and only the mask's pixels are written.
        strokes = cv2.dilate(strokes.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BLEED + 1,) * 2)) > 0
        thin, wide = split_by_width(strokes, self.settings.telea_width)
        holes = strokes.astype(np.uint8)  # every stroke is a hole: no fill draws from a letter
        method = _METHODS[self.settings.method]
        for rows, cols in mask_components(thin, 2 * self.settings.radius + 2):
            filled = cv2.inpaint(image[rows, cols], holes[rows, cols], self.settings.radius, method)
            hole = thin[rows, cols] if image.ndim == 2 else thin[rows, cols, None]
            out[rows, cols] = np.where(hole, filled, image[rows, cols])
        if wide.any():
            out = fill_wide(out, wide, strokes, self.settings.smooth_grain, self.settings.wide_fill)
        kept = letters & ~recovered  # the photo measured under semi-transparent letters stays as measured
        out = np.where(kept[..., None] if out.ndim == 3 else kept, out, image)
        return np.where(letters[..., None] if out.ndim == 3 else letters, out, original)


CHUNK = 3.0  # a long group is filled in pieces this many times its height: each piece finds its own source
MAX_JOIN = 64  # px: the widest gap between the letters of one group


def fill_wide(image: np.ndarray, wide: np.ndarray, strokes: np.ndarray, smooth_grain: float = 0.0,
              method: str = "patch") -> np.ndarray:
    """Each group of wide strokes (the letters of a word or line, joined across their gaps) filled
    by `WIDE_FILLS[method]` (`patch_fill` or `clone_fill`) on a crop around it, a long group piece by
    piece along its length (one source for a whole line copies a strip of whatever lies beside it);
    `strokes`: every letter pixel, never copied into a hole (pieces already filled are photo again and
    may be). The letters of a piece over a smooth photo (`smooth_parts`, under `smooth_grain`) are
    filled first, by `membrane_fill`."""
    textured = WIDE_FILLS[method]
    out = image.copy()
    frame_h, frame_w = wide.shape
    # The groups are found on the strokes' box with room for the widest join, not on the whole frame.
    ys, xs = np.nonzero(wide)
    top, left_x = max(0, ys.min() - MAX_JOIN), max(0, xs.min() - MAX_JOIN)
    box = (slice(top, ys.max() + MAX_JOIN + 1), slice(left_x, xs.max() + MAX_JOIN + 1))
    thickness = cv2.distanceTransform(np.pad(wide[box], 1).astype(np.uint8), cv2.DIST_L2, 3).max()
    join = int(np.clip(4 * thickness, 3, MAX_JOIN)) | 1
    groups = cv2.dilate(wide[box].astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (join, join)))
    count, boxed, stats, _ = cv2.connectedComponentsWithStats(groups, connectivity=8)
    stats[:, 0] += left_x
    stats[:, 1] += top
    labels = np.zeros(wide.shape, np.int32)
    labels[box] = boxed
    left = strokes.copy()
    for label in range(1, count):
        x, y, w, h, _ = stats[label]
        along = w >= h
        side, length = (h, w) if along else (w, h)
        pieces = max(1, round(length / (CHUNK * side)))
        for k in range(pieces):
            start, stop = length * k // pieces, length * (k + 1) // pieces
            px, py, pw, ph = (x + start, y, stop - start, h) if along else (x, y + start, w, stop - start)
            pad = int(3.5 * min(pw, ph)) + 8
            rows = slice(max(0, py - pad), min(frame_h, py + ph + pad))
            cols = slice(max(0, px - pad), min(frame_w, px + pw + pad))
            hole = wide[rows, cols] & (labels[rows, cols] == label)
            piece = np.zeros_like(hole)
            piece[py - rows.start:py - rows.start + ph, px - cols.start:px - cols.start + pw] = True
            hole &= piece
            if not hole.any():
                continue
            smooth = smooth_parts(out[rows, cols], hole, left[rows, cols], smooth_grain)
            for part, fill in ((smooth, membrane_fill), (hole & ~smooth, textured)):
                if part.any():
                    filled = fill(out[rows, cols], part, left[rows, cols] & ~part)
                    target = out[rows, cols]
                    target[part] = filled[part]
                    left[rows, cols] &= ~part
    return out


WIDE_FILLS = {"patch": patch_fill, "clone": clone_fill}
GRAIN_SIGMA = 3.0  # px: the photo's grain is its departure from a Gaussian of this size
GRAIN_RING = 10  # px: the photo around a letter whose grain decides how the letter is filled


def smooth_parts(image: np.ndarray, hole: np.ndarray, strokes: np.ndarray, grain_limit: float) -> np.ndarray:
    """The connected parts of `hole` (letters) whose photo within GRAIN_RING px, strokes left out,
    has a median grain (|luma - its Gaussian blur|) under `grain_limit` grey levels."""
    smooth = np.zeros_like(hole)
    if grain_limit <= 0:
        return smooth
    luma = luminance(image)
    grain = np.abs(luma - cv2.GaussianBlur(luma, (0, 0), GRAIN_SIGMA))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GRAIN_RING + 1,) * 2)
    for label in range(1, count):
        x, y, w, h, _ = stats[label]
        rows = slice(max(0, y - GRAIN_RING), y + h + GRAIN_RING)
        cols = slice(max(0, x - GRAIN_RING), x + w + GRAIN_RING)
        part = labels[rows, cols] == label
        ring = (cv2.dilate(part.astype(np.uint8), disk) > 0) & ~strokes[rows, cols]
        if ring.any() and float(np.median(grain[rows, cols][ring])) < grain_limit:
            smooth[rows, cols] |= part
    return smooth
