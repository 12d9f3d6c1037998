"""Text masks: cut a box (or a detector's line region) down to the pixels of the letters.

A box around a caption is mostly photo; filling all of it throws away true pixels that were never
covered. Inside each region the strokes are found as thin structures that stand out from a
background estimate, per colour channel and in both polarities: the difference to a median
background, and the morphological top-hat / black-hat (F. Meyer, "Contrast feature extraction",
1977). Light letters on dark, dark on light, a light fill inside a dark outline and
semi-transparent watermarks (which lift or darken the photo under them) all show up. Each
(channel, polarity) is thresholded by Otsu's method, floored by the photo's own texture measured
on the untouched ring around the region, and grown by hysteresis. The wrong polarity fires on the
background between the strokes, which is the photo, so a set counts as much as its pixels stand out
from the ring's colour in their own direction, as its colour is rare in the ring (the letters' ink
is not in the photo around them, the background between them is) and as it runs the length of the
line (a head or a highlight the region took in fills only part of it); the strongest are kept,
a set that lost on its length alone goes too (a cable running the length of a loose box must
not take the letters' place), and so does every set whose colour stands apart from the ring
(`APART`): both polarities of a letter, its fill and its outline, a semi-transparent fill.
Pixels of the other sets that touch the kept strokes go with them: an outline drawn over a
background of its own colour (a black outline crossing a dark coat) is only partly a set of its
own, and the part left behind reads as hollow letters. What the strokes close in on every side goes
too (`enclosed`): the fill inside an outline, even when it is drawn in the photo's own colour; and so
does the rest of an outline of one colour that the sets took only the inner edge of (`outline_band`).
Where a kept set is one opaque ink (even in luma), blobs of the strokes away from that ink's
pixels, the outline and what they enclose are photo the sets took in between the letters, and go
back (`near_ink`).
The strokes are then grown by a few pixels
to take the anti-aliased edges and halos. Where nothing plausible is found the region is kept
whole: a refinement must never under-remove. Thin photo structures inside the region (a mortar
line, a wire) go with the text: the price of that rule.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from tasks.masks import mask_components, nearest_labels
from tasks.probes import luminance, normalised_blur

MIN_CONTRAST = 10.0  # grey levels: weaker "strokes" are noise or JPEG ringing, not text
MIN_RING = 64  # ring pixels needed to trust the texture floor measured there
MAX_COVER = 0.75  # "strokes" covering more of a region than this mean it is not text on a photo
SMOOTH = 1.0  # px: the blur that averages grain out of the contrast, well under a stroke's width
RARE_IN_RING = 0.1  # an outline pixel's colour is rarer than this in the ring (ink, not photo)
ENCLOSED_DEPTH = 0.1  # a hole the strokes close in on, this share of the line's height deep at most, is a letter's fill
APART = 0.05  # a set whose median colour fewer than this share of the ring reach stands apart: it is kept
OUTLINE_DEPTH = 0.1  # of the line's height: the widest outline band taken beside the strokes (2-8 px)
OUTLINE_TOLERANCE = 20.0  # grey levels (worst channel): an outline's pixels are this near its colour
OUTLINE_SHARE = 0.6  # of the second ring around the strokes this near its median colour: one colour
OUTLINE_OWN = 0.5  # ... and more of it nearer that colour than the photo just beyond: an outline
OUTLINE_APART = 16.0  # grey levels (worst channel): where the outline's colour is this far from the photo beside it
INK_SPREAD = 6.0  # grey levels (luma, robust sd): a set this even is one opaque ink, not photo
INK_TOLERANCE = 16.0  # grey levels (luma; twice that per channel): a pixel this near an opaque ink's colour is ink
INK_REACH = 6  # px beside the ink that are letters whatever their colour: a 4 px outline and its anti-aliased edges
INK_BLOB = 0.1  # of the line's height: a blob of strokes farther from the ink, this wide or more, is photo
GLYPH_REACH = 1.5  # ink heights beyond each end of a line looked at for a glyph the detector left out
GLYPH_GAP = 1.0  # ink heights: the widest gap between a line's ink and a glyph that continues it
GLYPH_BAND = 0.25  # of the ink height above and below the ink's rows: the rows the glyph may take
GLYPH_STEPS = 3  # glyphs taken one after the other at each end ('$48' before '9,000')
GLYPH_SAMPLES = 128  # colours sampled of the ink, of the line's photo and of the photo above and below
GLYPH_AROUND = 32  # px at least above and below the window sampled as photo: a small line's half height is a few rows
GLYPH_INK = 24.0  # RGB distance: a pixel this near one of the ink's colours, half as near as any photo's...
GLYPH_APART = 48.0  # ... and this far from every one of them, is ink
VERSION = "11"  # bump when the strokes found for a region change: finished work is keyed by it


def _odd(value: float, low: int, high: int) -> int:
    value = int(np.clip(round(value), low, high))
    return value | 1


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold (N. Otsu, IEEE SMC 1979) of non-negative float values."""
    if values.size < 2 or values.max() <= values.min():
        return float(values.max(initial=0.0))
    scaled = np.clip(values * (255.0 / values.max()), 0, 255).astype(np.uint8)
    level, _ = cv2.threshold(scaled.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(level) * values.max() / 255.0


def _contrasts(pixels: np.ndarray, side: int) -> list[tuple[int, float, np.ndarray]]:
    """(channel, sign, strength) of light (+1) and dark (-1) structures thinner than `side`, per channel.

    Per channel, because coloured text can be light in one channel and dark in another (yellow on
    blue); the background is the channel's median over a `side` window, which letters (a minority
    of any such window) do not move, and a light blur averages out the photo's grain.
    """
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    out = []
    for c in range(planes.shape[-1]):
        plane = np.ascontiguousarray(planes[..., c])
        half = side // 2
        background = cv2.medianBlur(cv2.copyMakeBorder(plane, half, half, half, half, cv2.BORDER_REFLECT), side)
        background = background[side // 2:-(side // 2), side // 2:-(side // 2)]
        diff = cv2.GaussianBlur(plane.astype(np.float32) - background.astype(np.float32), (0, 0), SMOOTH)
        out.append((c, 1.0, np.maximum(diff, 0)))
        out.append((c, -1.0, np.maximum(-diff, 0)))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
        out.append((c, 1.0, cv2.morphologyEx(plane, cv2.MORPH_TOPHAT, kernel, borderType=cv2.BORDER_REFLECT).astype(np.float32)))
        blackhat = cv2.morphologyEx(plane, cv2.MORPH_BLACKHAT, kernel, borderType=cv2.BORDER_REFLECT)
        out.append((c, -1.0, blackhat.astype(np.float32)))
    return out


def _share_beyond(ordered: np.ndarray, values, sign: float):
    """For each of `values`, the share of the sorted ring values `ordered` at least as far out in
    direction `sign` (as light for +1, as dark for -1)."""
    if sign > 0:
        return 1.0 - np.searchsorted(ordered, values, side="left") / ordered.size
    return np.searchsorted(ordered, values, side="right") / ordered.size


def _hysteresis(response: np.ndarray, seeds: np.ndarray, low: float) -> np.ndarray:
    """Pixels above `low` connected to a seed (Canny's hysteresis): faint stroke ends and
    anti-aliased edges come with the stroke they belong to, faint texture elsewhere does not."""
    weak = (response > low).astype(np.uint8)
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[np.unique(labels[seeds])] = True
    keep[0] = False
    return keep[labels]


def _strokes(pixels: np.ndarray, inside: np.ndarray, ring: np.ndarray | None = None) -> np.ndarray | None:
    """Stroke pixels of one region (None when no plausible text is found). `ring`: the photo around
    it (default: all that is not `inside`)."""
    # Half the region's thickness ~ half the line height: wider than any stroke of that text.
    half = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3).max()
    side = _odd(half, 5, 61)
    ring = ~inside if ring is None else ring
    has_ring = np.count_nonzero(ring) >= MIN_RING
    colour = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).astype(np.float32)
    ring_colour = colour[ring]
    reference = ring_colour.mean(axis=0) if has_ring else np.median(colour[inside], axis=0)
    ordered_ring = np.sort(ring_colour, axis=0)  # per channel, for the shares of the ring below
    wide = np.count_nonzero(inside.any(axis=0)) >= np.count_nonzero(inside.any(axis=1))
    across = 0 if wide else 1  # the axis across the line (rows when it is wide)
    line = inside.any(axis=across)  # the positions along the line
    found = []
    for channel, sign, response in _contrasts(pixels, side):
        floor = MIN_CONTRAST
        if has_ring:
            floor = max(floor, float(np.percentile(response[ring], 95)))
        level = max(MIN_CONTRAST, min(floor, _otsu(response[inside])))
        seeds = response > level
        candidates = _hysteresis(response, seeds, max(MIN_CONTRAST, 0.7 * level)) & inside
        if not candidates.any():
            continue
        # The wrong polarity fires on the background between strokes, which is photo like the
        # ring: true strokes stand out from the ring in their own direction, and their colour is
        # rare there. `common`: the share of ring pixels at least as far out, in this set's
        # direction, as the set's median (the score falls fast with it: a ring of bright coins on
        # black makes the black between light letters stand out from the ring's mean too).
        values = colour[..., channel][candidates]
        offset = float(sign * (values.mean() - reference[channel]))
        common = float(_share_beyond(ordered_ring[:, channel], np.median(values), sign)) if has_ring else 0.0
        # Letters run the length of their line; a thing the region took in with them (a head below
        # a caption, a spoon's highlights) stands out as much but fills only part of it.
        spread = np.count_nonzero(candidates.any(axis=across) & line) / max(np.count_nonzero(line), 1)
        if offset >= MIN_CONTRAST:
            found.append((offset * (1.0 - common) ** 2, spread, candidates, channel, sign, common))
    # The scores rank the sets; they do not say whether there is text (a box far longer than its
    # word gives the letters a small spread, yet they are letters).
    best = max((rare * spread**2 for rare, spread, *_ in found), default=0.0)
    if best <= 0:
        return None
    # Several sets: a light fill in a dark outline, a semi-transparent fill's lift beside its
    # outline. Every set whose colour the photo around it hardly has is ink, whatever its score.
    kept = [rare * spread**2 >= 0.5 * best or common <= APART for rare, spread, *_, common in found]
    # A set that lost on its spread alone still goes: in a box longer than its word, a wire running
    # its whole length would otherwise take the letters' place. Never under-remove for a score.
    rarest_kept = max(rare for (rare, *_), keep in zip(found, kept) if keep)
    kept = [keep or rare > rarest_kept for (rare, *_), keep in zip(found, kept)]
    strokes = np.zeros(inside.shape, dtype=bool)
    others = []
    for (_, _, candidates, channel, sign, _), keep in zip(found, kept):
        if keep:
            strokes |= candidates
        else:
            others.append((candidates, channel, sign))
    if others and has_ring:
        # The rest of an outline: pixels of the other sets that touch the strokes and whose colour
        # is as rare in the ring as ink (not the background between the letters, which is photo).
        touching = cv2.dilate(strokes.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))).astype(bool)
        for candidates, channel, sign in others:
            near = candidates & touching
            rare = np.zeros_like(near)
            rare[near] = _share_beyond(ordered_ring[:, channel], colour[..., channel][near], sign) <= RARE_IN_RING
            strokes |= rare
    strokes |= enclosed(strokes, inside, 2 * half)
    cover = np.count_nonzero(strokes) / max(np.count_nonzero(inside), 1)
    if cover > MAX_COVER:
        return None
    band = outline_band(colour, strokes, inside, 2 * half)
    sets = [candidates for (_, _, candidates, *_), keep in zip(found, kept) if keep]
    return near_ink(colour, strokes | band, sets, band, inside, 2 * half)


def near_ink(colour: np.ndarray, strokes: np.ndarray, sets: list[np.ndarray], band: np.ndarray,
             inside: np.ndarray, height: float) -> np.ndarray:
    """`strokes` less the photo they took in: where a kept set is one opaque ink (its
    luma spread under INK_SPREAD grey levels), the pixels of that ink's colour, the outline `band`
    and what they enclose (a white fill inside a black outline over a white sky, whatever its
    colour) are the letters, and a blob of strokes more than INK_REACH px from them, INK_BLOB of the
    line's `height` across or more, is photo.

    On a busy photo the sets that stand apart from the ring take in the photo between the letters too
    (a dark room between white letters is rare in a ring of wall): the hole then covers the whole
    line, and any fill of it drifts from the photo's local level inside the letters. Printed ink is
    one colour; the photo is not. Semi-transparent ink carries the photo's texture, fails the spread
    test and is left as found; small pieces (the thin, anti-aliased ends of small letters) stay too.
    Luma, because JPEG halves the chroma's resolution: a red fill's red channel spreads 25 levels."""
    luma = luminance(colour if colour.shape[-1] == 3 else colour[..., 0])
    ink = np.zeros_like(strokes)
    for pixels in sets:
        level = float(np.median(luma[pixels]))
        if 1.4826 * float(np.median(np.abs(luma[pixels] - level))) > INK_SPREAD:
            continue
        tint = np.median(colour[pixels], axis=0)
        ink |= strokes & (np.abs(luma - level) <= INK_TOLERANCE) & (np.abs(colour - tint).max(axis=-1) <= 2 * INK_TOLERANCE)
    if not ink.any():
        return strokes
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * INK_REACH + 1, 2 * INK_REACH + 1))
    near = cv2.dilate((ink | band).astype(np.uint8), disk).astype(bool)
    near |= enclosed(near, inside, height)
    far = (strokes & ~near).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(far, connectivity=8)
    photo = stats[:, cv2.CC_STAT_AREA] >= (INK_BLOB * height) ** 2
    photo[0] = False
    return strokes & ~photo[labels]


def outline_band(colour: np.ndarray, strokes: np.ndarray, inside: np.ndarray, height: float) -> np.ndarray:
    """The rest of an outline drawn in one colour around `strokes`: pixels of `inside` up to
    OUTLINE_DEPTH of the line's `height` (2-8 px) from the strokes, joined to them, nearer that colour
    than the photo just beyond. Over a photo as dark as a dark outline the outline is a set of its own
    nowhere, yet its outer pixels, left beyond the grown strokes, read as a hairline around every
    letter, and the fill's membrane, pinned to them, darkens around them.

    The outline's colour is the median of the second ring around the strokes (the first is the
    letters' anti-aliased edge). It counts as an outline when most of that ring is within
    OUTLINE_TOLERANCE of it, and more than OUTLINE_OWN of the ring is nearer it than the photo's local
    mean just beyond: around plain letters the ring is photo, the colour of the photo beside it (a
    caption over a clear sky has a uniform ring of sky, which is no outline). A pixel is taken where
    that colour stands OUTLINE_APART from the photo beside it."""
    reach = int(np.clip(round(OUTLINE_DEPTH * height), 2, 8))
    distance = cv2.distanceTransform((~strokes).astype(np.uint8), cv2.DIST_L2, 5)
    touching = (distance > 0) & (distance < 1.5)
    second = (distance >= 1.5) & (distance < 2.5)
    beyond = (distance > reach + 1) & (distance <= reach + 4)
    none = np.zeros_like(strokes)
    if np.count_nonzero(second) < MIN_RING or not beyond.any():
        return none
    edge = np.median(colour[second], axis=0)
    if np.mean(np.abs(colour[second] - edge).max(axis=-1) <= OUTLINE_TOLERANCE) < OUTLINE_SHARE:
        return none

    def local_mean(side: int) -> tuple[np.ndarray, np.ndarray]:
        weight = cv2.boxFilter(beyond.astype(np.float32), -1, (side, side), normalize=False)
        total = cv2.boxFilter(colour * beyond[..., None], -1, (side, side), normalize=False).reshape(colour.shape)
        return total / np.maximum(weight, 1e-6)[..., None], weight > 0

    photo, has_photo = local_mean(6 * reach + 1)
    # Between close letters nothing lies beyond the band that near: the photo's colour from a line's height around.
    wide, has_wide = local_mean(max(6 * reach + 1, 2 * int(height) + 1))
    photo = np.where(has_photo[..., None], photo, wide)
    has_photo |= has_wide
    off_photo = np.abs(colour - photo).max(axis=-1)
    off_edge = np.abs(colour - edge).max(axis=-1)
    if np.mean(off_edge[second] < off_photo[second]) < OUTLINE_OWN:
        return none
    apart = np.abs(edge - photo).max(axis=-1) >= OUTLINE_APART
    band = (apart & has_photo & (off_edge <= OUTLINE_TOLERANCE) & (off_edge < off_photo) & (distance <= reach)
            & inside & ~strokes)
    return _hysteresis(band.astype(np.float32), band & touching, 0.5)  # the parts joined to the strokes


def enclosed(strokes: np.ndarray, inside: np.ndarray, height: float) -> np.ndarray:
    """Pixels of `inside` the strokes close in on every side (4-connected), in holes no wider than a
    letter's stroke (a tenth of the line's `height` px from their edge at most): the fill of an
    outlined letter. A semi-transparent fill close to the photo's colour (dark ink over a dark coat)
    is no set of its own, yet it is the letters; the outline around it says where it is. The
    counters of solid letters (the inside of an "O", several strokes wide) are photo and stay."""
    open_ = (~strokes).astype(np.uint8)
    count, labels = cv2.connectedComponents(open_, connectivity=4)
    depth = cv2.distanceTransform(open_, cv2.DIST_L2, 3)
    deepest = ndimage.maximum(depth, labels, np.arange(count))
    keep = np.asarray(deepest) <= max(ENCLOSED_DEPTH * height, 1.0)
    keep[np.unique(labels[~inside])] = False  # connected to the photo outside the region: not enclosed
    keep[0] = False  # the strokes themselves
    return keep[labels] & inside


FRINGE_STEPS = 2  # px beyond the grown strokes an outline's faint outer edge may still reach
FRINGE_FLOOR = 6.0  # grey levels: a departure under this is the photo's own grain, never ink
FRINGE_SIGMA = 3.0  # px: the Gaussian whose mean of the pixels further out is the photo a fringe pixel departs from
FRINGE_INK = 1.5  # the strokes beside a fringe pixel depart this many times the floor from the photo: ink


def outer_fringe(pixels: np.ndarray, strokes: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`strokes` with the pixels just beyond them that still lean toward the ink beside them: the
    outermost anti-aliased edge of an outline, which the strokes' growth misses where the strokes
    end inside it and which reads, left in place, as a hairline round every letter.

    One pixel a step, up to FRINGE_STEPS: a pixel of the ring is taken when it departs from the
    photo estimated around it (the Gaussian mean of the pixels two or more further out, a blur per
    plane where fast marching cost 7 times as much) toward the mean colour of the strokes next to
    it, by more than the photo's own departure there (the 90th percentile over that outer band, at
    least FRINGE_FLOOR), where those strokes stand FRINGE_INK times that far from the photo (ink;
    not the edge of a blob of photo the strokes took in, a tower beside white letters, which would
    grow into the photo)."""
    colour = pixels.reshape(*strokes.shape, -1).astype(np.float32)
    cross = np.ones((3, 3), np.uint8)
    for _ in range(FRINGE_STEPS):
        ring = (cv2.dilate(strokes.astype(np.uint8), cross) > 0) & ~strokes & inside
        if not ring.any():
            break
        near = strokes | ring
        band = (cv2.dilate(near.astype(np.uint8), cross, iterations=2) > 0) & ~near
        if not band.any():
            break
        estimate = normalised_blur(colour, ~(near | band), FRINGE_SIGMA)
        departure = colour - estimate
        floor = max(FRINGE_FLOOR, float(np.percentile(np.abs(departure).max(-1)[band], 90)))
        weight = cv2.blur(strokes.astype(np.float32), (3, 3))
        ink = cv2.blur(colour * strokes[..., None], (3, 3)).reshape(colour.shape) / np.maximum(weight, 1e-6)[..., None]
        lean = ink - estimate
        toward = (departure * lean).sum(-1) > 0
        # Beside a blob of photo the strokes took in, the strokes are photo too: they stand out little
        # from the photo estimated around them, an outline's ink a great deal.
        inked = np.abs(lean).max(-1) > FRINGE_INK * floor
        take = ring & toward & inked & (np.abs(departure).max(-1) > floor)
        if not take.any():
            break
        strokes = strokes | take
    return strokes


def refine_text_mask(image: np.ndarray, coarse_mask: np.ndarray, grow: int = 2, margin: int = 12,
                     lines: np.ndarray | None = None) -> np.ndarray:
    """The stroke pixels of the text inside `coarse_mask`, grown by `grow` px and by an outline's faint
    outer edge (`outer_fringe`), within `coarse_mask`.

    image: HxWx3 RGB or HxW grey uint8; coarse_mask: HxW bool (boxes, polygons or detector
    regions); lines: HxW int labels (a detector's `lines`, 0 = none) where a connected region
    holds several lines (a phone number stacked under a banner): each is refined on its own, against
    the photo outside every region, so one line's ink does not make the other's letters photo.
    Returns HxW bool. Regions where no plausible strokes are found stay whole.
    """
    coarse_mask = coarse_mask.astype(bool)
    refined = np.zeros_like(coarse_mask)
    if not coarse_mask.any():
        return refined
    for rows, cols in mask_components(coarse_mask, margin):
        inside = coarse_mask[rows, cols]
        for part in _line_parts(inside, None if lines is None else lines[rows, cols]):
            strokes = _strokes(image[rows, cols], part, ~inside)
            if strokes is None:
                refined[rows, cols] |= part
                continue
            if grow:
                disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
                strokes = cv2.dilate(strokes.astype(np.uint8), disk).astype(bool)
            strokes = outer_fringe(image[rows, cols], strokes & inside, inside)
            refined[rows, cols] |= strokes & inside
    return refined


def _spread(pixels: np.ndarray, count: int) -> np.ndarray:
    """`count` of `pixels` (Nx3) taken evenly along them (all of them when fewer): a sample that is
    the same on every run."""
    if len(pixels) <= count:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, count).astype(np.int64)]


def _ink_like(window: np.ndarray, ink: np.ndarray, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of `window` (HxWx3 float32) whose colour is within GLYPH_INK of one of `ink`'s, at
    most half as far as the nearest of `photo`'s and at least GLYPH_APART from all of them; and
    those within GLYPH_INK of one of `ink`'s, whatever the photo's (an outline as dark as the photo)."""
    flat = window.reshape(-1, 3)

    def nearest(colours: np.ndarray) -> np.ndarray:
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: a matrix product, not an N x K x 3 array, in chunks of
        # 64k pixels (a banner 800 px high has a window of 1.4 M)
        out = np.empty(len(flat), np.float32)
        for start in range(0, len(flat), 65536):
            part = flat[start:start + 65536]
            squared = (part * part).sum(1, keepdims=True) + (colours * colours).sum(1)[None] - 2 * part @ colours.T
            out[start:start + 65536] = np.sqrt(np.maximum(squared, 0).min(1))
        return out

    to_ink, to_photo = nearest(ink), nearest(photo)
    near = to_ink < GLYPH_INK
    return (near & (to_ink < 0.5 * to_photo) & (to_photo > GLYPH_APART)).reshape(window.shape[:2]), near.reshape(window.shape[:2])


def _glyphs(like: np.ndarray, others: np.ndarray, side: int, ink_rows: tuple[float, float], gap: float) -> np.ndarray:
    """The glyphs among `like`'s connected sets in a window beyond a line's end (`side` -1: before
    it, the window's right edge its end; 1: after it), as `continue_lines` takes them; `others`: the
    lines' regions over the window; `ink_rows`: the ink's top and bottom rows in the window's frame."""
    top, bottom = ink_rows
    height = bottom - top
    count, labels, stats, _ = cv2.connectedComponentsWithStats(like.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[cv2.dilate(others.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0])
    glyphs = np.zeros_like(like)
    for k in range(1, count):
        if k in touching:
            continue
        x, y, w, h, _ = stats[k]
        apart = like.shape[1] - (x + w) if side < 0 else x
        # A glyph is whole inside the window: what runs on past its rows or its far end is photo.
        far = x == 0 if side < 0 else x + w == like.shape[1]
        if (far or y == 0 or y + h == like.shape[0] or h < 0.5 * height or w > 1.5 * h
                or abs(y + h / 2 - (top + bottom) / 2) > GLYPH_BAND * height or not 0 < apart <= gap * height):
            continue
        glyphs |= labels == k
        glyphs[y:y + h, x:x + w] |= like[y:y + h, x:x + w]
    return glyphs


def continue_lines(image: np.ndarray, strokes: np.ndarray, lines: np.ndarray, grow: int = 2,
                   gap: float = GLYPH_GAP) -> np.ndarray:
    """`strokes` with the glyphs a text detector left out at the ends of its `lines` (HxW int labels),
    grown by `grow` px.

    image: HxWx3 RGB or HxW grey uint8; strokes: HxW bool (the refined strokes). Returns HxW bool.

    The detector does not see a lone symbol as text (a '©' before 'stockphoto': its probability
    there is nil at any scale) nor does the recogniser read it, so the line ends at the word and the
    symbol is published. In a window GLYPH_REACH ink heights wide beyond each end of a line's ink,
    over its rows and GLYPH_BAND more, a glyph is a connected set of pixels of the line's own ink
    colours (`_ink_like`: near the ink's, far from the photo's in the line and just above and below
    the window, where no glyph of the line reaches), outside every line's region and not touching
    one (what runs on from a region is photo its refinement left out), that fits in those rows and
    in the window (a glyph a height wide is taken up to half a height from the end), is at least
    half the ink's height, no wider than 1.5 times its height, centred on the line, and apart from
    the end by at most `gap` ink heights; with the ink-coloured pixels of its box (the c of the ©)
    and the pixels of the ink's colours within INK_REACH of it (its outline, dark as the photo may
    be). The window moves on past what it took, GLYPH_STEPS times at most."""
    strokes = strokes.astype(bool)
    out = strokes.copy()
    regions = lines > 0
    if gap <= 0 or not regions.any():
        return out
    colour = (image if image.ndim == 3 else np.repeat(image[..., None], 3, 2)).astype(np.float32)
    frame_h, frame_w = strokes.shape
    outline = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * INK_REACH + 1, 2 * INK_REACH + 1))
    for label in np.unique(lines[regions]):
        region = lines == label
        ink = strokes & region
        if np.count_nonzero(ink) < 50:
            continue
        ys, xs = np.nonzero(ink)
        top, bottom = float(np.percentile(ys, 1)), float(np.percentile(ys, 99)) + 1
        height = bottom - top
        photo = region & ~(cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
        if np.count_nonzero(photo) < 16:
            continue  # a region kept whole: no ink told from photo to match
        ink_colours = _spread(colour[ink], GLYPH_SAMPLES)
        photo_colours = _spread(colour[photo], GLYPH_SAMPLES)
        rows = slice(int(max(0, top - GLYPH_BAND * height)), int(min(frame_h, bottom + GLYPH_BAND * height)))
        beyond = max(int(0.5 * height), GLYPH_AROUND)
        for side in (-1, 1):
            edge = int(xs.min()) if side < 0 else int(xs.max()) + 1
            for _ in range(GLYPH_STEPS):
                width = int(GLYPH_REACH * height)
                cols = slice(max(0, edge - width), edge) if side < 0 else slice(edge, min(frame_w, edge + width))
                if cols.stop - cols.start < 4:
                    break
                # The photo above and below the window (GLYPH_AROUND rows at least): no glyph of the line is there.
                around = np.concatenate([colour[max(0, rows.start - beyond):rows.start, cols].reshape(-1, 3),
                                         colour[rows.stop:rows.stop + beyond, cols].reshape(-1, 3)])
                like, inky = _ink_like(colour[rows, cols], ink_colours,
                                       np.concatenate([photo_colours, _spread(around, GLYPH_SAMPLES)]))
                # The lines' regions are their refinement's to judge: a set running on from one (the
                # photo the refinement left out there) is no glyph, nor is another line's letter.
                others = regions[rows, cols]
                like &= ~others
                glyphs = _glyphs(like, others, side, (top - rows.start, bottom - rows.start), gap)
                if not glyphs.any():
                    break
                # Its outline goes with it, of the ink's colours even where the photo has them too.
                glyphs |= (cv2.dilate(glyphs.astype(np.uint8), outline) > 0) & inky & ~others
                out[rows, cols] |= glyphs
                taken = np.flatnonzero(glyphs.any(0))
                edge = cols.start + (int(taken.min()) if side < 0 else int(taken.max()) + 1)
    if grow:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        out |= cv2.dilate((out & ~strokes).astype(np.uint8), disk) > 0
    return out


def _line_parts(inside: np.ndarray, lines: np.ndarray | None) -> list[np.ndarray]:
    """`inside` as the parts refined on their own: each line of a connected region that `lines`
    cuts into several (its pixels of no line, a box the user drew over it, going to the nearest
    line), and the rest together, as one."""
    if lines is None:
        return [inside]
    count, regions = cv2.connectedComponents(inside.astype(np.uint8), connectivity=8)
    rest, parts = inside.copy(), []
    for region in range(1, count):
        pixels = regions == region
        labels = np.unique(lines[pixels])
        labels = labels[labels > 0]
        if labels.size < 2:
            continue
        rest &= ~pixels
        own = np.where(pixels, lines, 0)
        if (pixels & (own <= 0)).any():
            own = np.where(pixels, nearest_labels(own), 0)
        parts += [own == label for label in labels]
    return [rest, *parts] if rest.any() else parts


def join_lines(labelled: list[np.ndarray]) -> np.ndarray:
    """Several detectors' `lines` as one label image: each connected region of their union is one
    line, unless one detector's labels cut it into several (the first that does)."""
    if len(labelled) == 1:
        return labelled[0]
    union = np.zeros(labelled[0].shape, dtype=bool)
    for labels in labelled:
        union |= labels > 0
    count, joined = cv2.connectedComponents(union.astype(np.uint8), connectivity=8)
    following = count
    for region in range(1, count):
        pixels = joined == region
        for labels in labelled:
            inner = np.unique(labels[pixels])
            inner = inner[inner > 0]
            if inner.size >= 2:
                for offset, label in enumerate(inner[1:]):
                    joined[pixels & (labels == label)] = following + offset
                following += inner.size - 1
                break
    return joined
