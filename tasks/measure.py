"""Measure: reference-free quality metrics of an edit, computed against the untouched photo around it.

In production there is no ground truth, so each mask component is compared with a *ring* of
untouched pixels around it (ring width scaled to the component: half the square root of its area,
6–48 px). All metrics work on luminance (Rec. 601 Y, float32) inside a crop around the component.

- `texture_ratio`: std of the Laplacian, fill / ring. A smudge scores < 0.5; a faithful fill ≈ 1.
- `noise_ratio`: Immerkaer noise sigma, fill / ring ("does the fill carry the photo's ISO noise?").
  J. Immerkaer, "Fast Noise Variance Estimation", CVIU 64(2), 1996.
- `seam_score`: step of local mean brightness across the mask boundary / the same step across a
  contour of the same shape inside the ring. A seamless fill ≈ 1; a visible step scores well above.
- `structure_continuity`: of the strong edges (Canny) that reach the hole from the ring, the share
  that go on inside the fill ("does the plank line continue behind the removed car?").
  NaN when fewer than 3 strong edges enter.
- `ghost_score` (text): gradient on the removed strokes' contours (edges of the input inside the
  mask that are edges of what the edit took away too) / gradient elsewhere in the fill, and in the
  ring around it where most outlines lie on the mask's edge (a mask drawn to the letters: there
  the gradient reads the photo beside it), each at
  least `FLAT_GRADIENT` (a flat fill over a clipped sky scores 1, not ringing / 0). A clean
  fill has no memory of where the letters were (≈ 1); left-over outlines score well above.
- `remnant_score` (text): the share of the removed text's signal still in place, without ground
  truth. The photo under the text is estimated from the ring across the region where the text was
  said to be (its box, line region or drawn mask, not only the pixels refined to strokes), twice:
  by coherence transport (`tasks.clean.coherence`: the photo's lines run on through) and by fast
  marching; against each, the text's signal is the input's departure from the estimate, on the
  pixels that depart more than the photo's own texture departs from the same estimate around the
  region, and the output's departure is projected on it (0: gone, 1: untouched); the score is the
  lower of the two (NaN where against either nothing stands out). It sees letters the mask
  missed (left as they were) and fills that kept their colour and shape (a smear), which neither
  the detector (faint, outlined, colour-on-colour text) nor the ghost score (no edges) may see.
- `text_detected` (text): whether the shipped text detector still fires inside the region the
  text was said to be in, strokes and all (`text_still_detected`, run by the partition worker,
  which holds the model).
- `privacy_residual` (blur): Laplacian std of the blurred region / the same region before: the
  share of fine detail left (≈ 0 for a mosaic).

Per image, ratios are averaged over components weighted by area; continuity pools the entries.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from tasks.clean.coherence import coherence_fill
from tasks.masks import mask_components
from tasks.probes import immerkaer_sigma, laplacian_std, luminance

MIN_PIXELS = 16  # below this a region's statistics are noise, not measurement
MIN_LINES = 3  # continuity of fewer entering lines is chance, not a measurement
RING_SCALE, RING_WIDTHS = 0.5, (6, 48)  # ring width: this times sqrt(component area), within these px
EDGE_PERCENTILE, MIN_EDGE_GRADIENT = 90, 40.0  # Canny's high threshold: the ring's 90th gradient, at least 40
# Below these a region is flat (an 8-bit photo's quantisation: sigma 0.29): clipped highlights, a plain
# backdrop. Their ratios are taken from here, so a flat fill of a flat ring scores 1.
FLAT_TEXTURE, FLAT_NOISE = 0.5, 0.3
EDGE_BAND = 2  # px: outlines this near a mask's edge are read against the photo beside it too (ghost score)
FLAT_GRADIENT = 4.0  # a one-grey-level step as the 3x3 Sobel reads it: the ghost score's floor on both sides
METRICS_VERSION = "6"  # bump when the metrics' values change: finished work (and its gate verdicts) is keyed by it
MIN_NATURAL_STEP = 0.5  # grey levels: the seam score's denominator never falls below half a level
_EPS = 1e-6



def mask_fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else 0.0


def outside_changed(original: np.ndarray, final: np.ndarray, mask: np.ndarray) -> int:
    """Pixels outside `mask` whose value differs in any channel (must be 0)."""
    differs = original != final
    if differs.ndim == 3:
        differs = differs.any(axis=-1)
    return int(np.count_nonzero(differs & ~mask))


REMNANT_QUANTILE = 99  # the photo's own departure from an estimate that text must exceed
REMNANT_MAX_SIDE = 1024  # px: larger regions are measured at this scale (the signal is the letters, not grain)


def _carried_across(pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`pixels` with `hole` filled from its edge by coherence transport, as float32 (HxWxC): a wire or
    a bar that crosses the text runs on through the estimate as it runs on through a good fill."""
    return coherence_fill(pixels, hole).reshape(*hole.shape, -1)


def _diffused(pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`pixels` with `hole` filled by fast marching from its edge, as float32 (HxWxC)."""
    filled = cv2.inpaint(pixels, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return filled.reshape(*hole.shape, -1).astype(np.float32)


# Two estimates of the photo under the text, each wrong where the other is not: fast marching smears a
# wire crossing dark letters, so a fill that carries the wire through reads as the letters' colour
# (listing row 037: the truth itself scores 1.02); the transport draws a busy photo's lines on into
# the letters (the demo's cat eyes under a watermark). A remnant counts as much as both see it.
_ESTIMATES = (_carried_across, _diffused)


def _remnant_reference(original: np.ndarray, region: np.ndarray, estimated) -> tuple[np.ndarray, np.ndarray] | None:
    """What one region's crop is measured against, from the original alone: the photo under it as
    `estimated` from its edge (HxWxC) and the pixels whose departure from that is text (HxW); None
    without a ring to learn from."""
    depth = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)
    band = int(np.clip(np.ceil(depth.max()), 4, 48))  # as deep as the region: the same distance from known pixels
    ring = (cv2.dilate(region.astype(np.uint8), _disc(band)) > 0) & ~region
    if np.count_nonzero(ring) < MIN_PIXELS:
        return None
    estimate = estimated(original, region)
    before = original.reshape(*region.shape, -1).astype(np.float32) - estimate
    # The photo's own departure from an estimate of the same depth: the ring estimated from beyond it.
    photo = np.abs(original.reshape(*region.shape, -1).astype(np.float32) - estimated(original, ring | region))
    floor = max(float(np.percentile(photo[ring].max(axis=-1), REMNANT_QUANTILE)), 10.0)
    return estimate, region & (np.abs(before).max(axis=-1) > floor)


def _remnant_parts(original: np.ndarray, final: np.ndarray, reference) -> tuple[float, float]:
    """(projection, energy) of one region's crop: the sums whose ratio is its remnant score."""
    if reference is None:
        return 0.0, 0.0
    estimate, text = reference
    before = original.reshape(*text.shape, -1).astype(np.float32) - estimate
    after = final.reshape(*text.shape, -1).astype(np.float32) - estimate
    return float((after[text] * before[text]).sum()), float((before[text] ** 2).sum())


def remnant_score(original: np.ndarray, final: np.ndarray, region: np.ndarray, pad: int = 48,
                  memo: dict | None = None) -> float:
    """The share of the text's signal in `region` still in `final` (0: gone, 1: untouched), the lower
    of its measures against the two estimates of the photo under the text; NaN when, against either
    estimate, nothing in the region stands out from the photo around it. See the module's docstring.
    `region`: HxW bool, where the text was said to be (before any refinement). `memo`: a dict kept
    across calls on one original (the candidates of a refused edit), so that each region's
    references, four estimates from the original, are found once."""
    memo = {} if memo is None else memo
    projection, energy = np.zeros(len(_ESTIMATES)), np.zeros(len(_ESTIMATES))
    for rows, cols in mask_components(region, pad):
        crop_region = region[rows, cols]
        crops = [original[rows, cols], final[rows, cols]]
        scale = min(1.0, REMNANT_MAX_SIDE / max(crop_region.shape))
        if scale < 1.0:
            size = (max(1, round(crop_region.shape[1] * scale)), max(1, round(crop_region.shape[0] * scale)))
            crops = [cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in crops]
            crop_region = cv2.resize(crop_region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        key = (rows.start, rows.stop, cols.start, cols.stop, np.packbits(crop_region).tobytes())
        if key not in memo:
            memo[key] = [_remnant_reference(crops[0], crop_region, estimated) for estimated in _ESTIMATES]
        for k, reference in enumerate(memo[key]):
            part, total = _remnant_parts(*crops, reference)
            projection[k] += part
            energy[k] += total
    # Text only one estimate sees standing out is no text both agree on: nothing to measure.
    return float((projection / energy).min()) if (energy > 0).all() else math.nan


TEXT_CHECK_HEIGHT = 128  # px: the removed region's height the check brings it to (text_check_benchmark.py)
TEXT_CHECK_VERSION = "5"  # bump when the check's verdicts change: finished work is keyed by it


def text_still_detected(final: np.ndarray, mask: np.ndarray, detector, margin: int = 24, mode: str = "text",
                        height: int = TEXT_CHECK_HEIGHT, region: np.ndarray | None = None) -> bool:
    """Does the text detector still fire inside the removed region, or anywhere in `region` (where
    the text was said to be: letters the refinement left out of the mask are text still there)?

    `detector`: `regions(image, scale) -> HxW bool` and `scale_for(shape)`, the scale it detects a
    whole image of that shape at (`tasks.detect.text.TextDetector`). It runs on a crop around the
    mask (text is found in context, and a crop is cheap), at the scale the text needs (`mode`
    "text"): the removed region's height brought to `height` pixels, never below the scale
    the whole frame is detected at (what the detector found on the frame, it finds again) nor above
    the crop's own short side brought to the detector's `min_side`. "frame": the frame's scale;
    "upscaled": the crop's short side brought to `min_side` (the check as it was: several times
    the cost for the same catches; benchmarks/text_check_benchmark.py)."""
    ys = np.flatnonzero(mask.any(axis=1))
    if not len(ys):
        return False
    where = mask if region is None else mask | region
    wys, wxs = np.nonzero(where)
    rows = slice(max(0, wys.min() - margin), wys.max() + margin + 1)
    cols = slice(max(0, wxs.min() - margin), wxs.max() + margin + 1)
    crop = final[rows, cols]
    upscaled = detector.scale_for(crop.shape)
    if mode == "upscaled":
        scale = upscaled
    else:
        frame = detector.scale_for(final.shape)
        scale = frame if mode == "frame" else min(max(frame, height / (ys.max() - ys.min() + 1)), upscaled)
    # The photo pass only: the local-contrast pass would read a fill's own texture seams as strokes.
    return bool((detector.regions(crop, scale, contrast=False) & where[rows, cols]).any())


def _ratio(fill: float, ring: float, flat: float) -> float:
    """fill / ring, each at least `flat`: a clipped sky filled as flat as it is scores 1, not 0 / 0."""
    return max(fill, flat) / max(ring, flat)


def ring_width(area: int) -> int:
    return int(np.clip(round(RING_SCALE * math.sqrt(area)), *RING_WIDTHS))


def gradient_magnitude(lum: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
    # numpy, not cv2.magnitude: OpenCV's vector and scalar paths round apart, and which pixels take
    # which depends on the buffer's alignment, so the last bits of a score changed from run to run.
    return np.sqrt(gx * gx + gy * gy)


def strong_edges(lum: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Canny edges with thresholds set by the gradient statistics of `reference` (the ring)."""
    high = max(float(np.percentile(reference, EDGE_PERCENTILE)), MIN_EDGE_GRADIENT)
    lum8 = np.clip(lum, 0, 255).astype(np.uint8)
    return cv2.Canny(lum8, high / 2, high, L2gradient=True) > 0


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def significant(value, digits: int = 7):
    """A float rounded to `digits` significant digits (others unchanged): the metrics are float32
    sums, whose last bits are noise, and the published tables must be the same bytes on a rerun."""
    if not isinstance(value, float) or not math.isfinite(value) or value == 0.0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@dataclass
class ComponentMetrics:
    area: int
    ring_width: int
    texture_ratio: float = math.nan
    noise_ratio: float = math.nan
    seam_score: float = math.nan
    structure_entries: int = 0
    structure_continued: int = 0
    ghost_score: float = math.nan
    privacy_residual: float = math.nan


@dataclass
class EditMetrics:
    texture_ratio: float = math.nan
    noise_ratio: float = math.nan
    seam_score: float = math.nan
    structure_continuity: float = math.nan
    structure_entries: int = 0
    ghost_score: float = math.nan
    privacy_residual: float = math.nan
    components: list[dict] = field(default_factory=list)

    def as_record(self) -> dict:
        """Plain values for Parquet: NaN (not measured) becomes null, here and per component."""
        def clean(values: dict) -> dict:
            return {k: (None if isinstance(v, float) and math.isnan(v) else significant(v)) for k, v in values.items()}

        record = clean({k: v for k, v in asdict(self).items() if k != "components"})
        record["components"] = [clean(c) for c in self.components]
        return record


def _interior(region: np.ndarray, margin: int = 2) -> np.ndarray:
    core = cv2.erode(region.astype(np.uint8), _disc(margin)) > 0
    return core if core.sum() >= MIN_PIXELS else region


def _local_mean(lum: np.ndarray, band: np.ndarray, size: int = 7) -> tuple[np.ndarray, np.ndarray]:
    weight = cv2.boxFilter(band.astype(np.float32), -1, (size, size), normalize=False)
    total = cv2.boxFilter(lum * band, -1, (size, size), normalize=False)
    return total / np.maximum(weight, _EPS), weight > 0


def seam_score(lum: np.ndarray, fill: np.ndarray, ring: np.ndarray, band: float = 3.0) -> float:
    """Step of local mean brightness across the mask boundary, relative to the step across an
    equally shaped contour inside the ring, where the photo is untouched. ≈ 1 without a seam."""
    outside_distance = cv2.distanceTransform((~fill).astype(np.uint8), cv2.DIST_L2, 3)
    inside_distance = cv2.distanceTransform(fill.astype(np.uint8), cv2.DIST_L2, 3)
    inner = fill & (inside_distance <= band)
    outer = ring & (outside_distance <= band)
    outer2 = ring & (outside_distance > band) & (outside_distance <= 2 * band)
    mean_inner, has_inner = _local_mean(lum, inner)
    mean_outer, has_outer = _local_mean(lum, outer)
    mean_outer2, has_outer2 = _local_mean(lum, outer2)
    boundary = ring & (outside_distance <= 1.5) & has_inner & has_outer
    reference = ring & (outside_distance > band) & (outside_distance <= band + 1.5) & has_outer & has_outer2
    if boundary.sum() < MIN_PIXELS or reference.sum() < MIN_PIXELS:
        return math.nan
    step = np.abs(mean_inner - mean_outer)[boundary].mean()
    natural = np.abs(mean_outer - mean_outer2)[reference].mean()
    return float(step / max(natural, MIN_NATURAL_STEP))


def _continuity(lum: np.ndarray, fill: np.ndarray, ring: np.ndarray, gradient: np.ndarray, width: int) -> tuple[int, int]:
    """(lines entering the hole, lines that go on inside it).

    A line is a strong edge segment of the ring that reaches the hole. Its direction is the
    principal axis of its last few pixels before the hole; it "goes on" when the fill has an edge
    within 2 px of that axis some way inside the hole (where a smudge has faded).
    """
    edges = strong_edges(lum, gradient[ring])
    outside_distance = cv2.distanceTransform((~fill).astype(np.uint8), cv2.DIST_L2, 3)
    depth = cv2.distanceTransform(fill.astype(np.uint8), cv2.DIST_L2, 3)
    approach = edges & ring & (outside_distance <= 8)
    labels, count = ndimage.label(approach, structure=np.ones((3, 3)))
    if count == 0:
        return 0, 0
    near, far = max(3.0, width / 4), max(3.0, width / 4) + 4
    inside_edges = edges & fill & (depth >= near - 2)
    to_edge = cv2.distanceTransform((~inside_edges).astype(np.uint8), cv2.DIST_L2, 3)
    height, width_px = fill.shape
    entries = continued = 0
    steps = np.arange(1.0, 3 * far, 0.5)
    for index, segment in enumerate(ndimage.find_objects(labels), start=1):
        ys, xs = np.nonzero(labels[segment] == index)
        ys, xs = ys + segment[0].start, xs + segment[1].start
        touching = outside_distance[ys, xs] <= 2
        if not touching.any() or len(ys) < 4:
            continue  # texture speckle, or a line that runs beside the hole without reaching it
        entries += 1
        points = np.column_stack([xs, ys]).astype(np.float64)
        centre = points.mean(axis=0)
        _, _, axes = np.linalg.svd(points - centre, full_matrices=False)
        direction = axes[0]
        start = points[touching].mean(axis=0)
        if np.dot(direction, start - centre) < 0:
            direction = -direction  # point the axis into the hole
        probe = start[None, :] + steps[:, None] * direction[None, :]
        px, py = np.rint(probe[:, 0]).astype(int), np.rint(probe[:, 1]).astype(int)
        keep = (px >= 0) & (py >= 0) & (px < width_px) & (py < height)
        px, py = px[keep], py[keep]
        band = (depth[py, px] >= near) & (depth[py, px] <= far)
        if band.any() and (to_edge[py[band], px[band]] <= 2).any():
            continued += 1
    return entries, continued


def measure_edit(
    original: np.ndarray, final: np.ndarray, mask: np.ndarray, action: str = "remove", removal: str = "object"
) -> EditMetrics:
    """Metrics of the edit `original` → `final` inside `mask` (see the module docstring)."""
    metrics = EditMetrics()
    if not mask.any():
        return metrics
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    height, width = mask.shape
    components: list[ComponentMetrics] = []
    for index in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[index])
        ring_w = ring_width(area)
        pad = ring_w + 3
        rows = slice(max(0, y - pad), min(height, y + h + pad))
        cols = slice(max(0, x - pad), min(width, x + w + pad))
        fill = labels[rows, cols] == index
        ring = (cv2.dilate(fill.astype(np.uint8), _disc(ring_w)) > 0) & ~mask[rows, cols]
        item = ComponentMetrics(area=area, ring_width=ring_w)
        components.append(item)
        if fill.sum() < MIN_PIXELS or ring.sum() < MIN_PIXELS:
            continue
        after = luminance(final[rows, cols])
        if action == "blur":
            before = luminance(original[rows, cols])
            core = _interior(fill, 3)  # the region's own edge against the photo is not detail
            item.privacy_residual = laplacian_std(after, core) / max(laplacian_std(before, core), _EPS)
            continue
        # Texture and noise from the interiors: the boundary itself belongs to the seam metric.
        inside, outside = _interior(fill), _interior(ring)
        item.texture_ratio = _ratio(laplacian_std(after, inside), laplacian_std(after, outside), FLAT_TEXTURE)
        item.noise_ratio = _ratio(immerkaer_sigma(after, inside), immerkaer_sigma(after, outside), FLAT_NOISE)
        item.seam_score = seam_score(after, fill, ring)
        gradient = gradient_magnitude(after)
        item.structure_entries, item.structure_continued = _continuity(after, fill, ring, gradient, ring_w)
        if removal == "text":
            before = luminance(original[rows, cols])
            # The letters' outlines are the edges of what the edit took away, not of the photo, and
            # edges the input had: a fill that copies the photo's texture (rock, fibres) has edges of
            # its own in what was taken away, where the input had none, and they are no ghost.
            removed = np.abs(before - after)
            outlines = cv2.dilate(strong_edges(before, gradient_magnitude(before)[fill]).astype(np.uint8), _disc(1)) > 0
            strokes = strong_edges(removed, gradient_magnitude(removed)[fill]) & outlines & fill
            away = fill & ~(cv2.dilate(strokes.astype(np.uint8), _disc(2)) > 0)
            if strokes.sum() >= MIN_PIXELS and away.sum() >= MIN_PIXELS:
                # Over a clipped sky the fill is flat: a JPEG's ringing on the contour scored 10^6.
                # A mask drawn to the letters has their outlines on its edge, where the gradient
                # reads the photo beside the mask, and no fill elsewhere but their calm interiors:
                # the truth itself, put back, scored 2.4. Where most outlines lie on the edge, the
                # ring is the reference too; a region's fill (a box, a detection) holds the letters
                # inside it and is judged by the rest of itself.
                edge = fill & ~(cv2.erode(fill.astype(np.uint8), _disc(EDGE_BAND)) > 0)
                on_edge = 2 * np.count_nonzero(strokes & edge) >= np.count_nonzero(strokes)
                elsewhere = away | ring if on_edge else away
                item.ghost_score = _ratio(float(gradient[strokes].mean()), float(gradient[elsewhere].mean()), FLAT_GRADIENT)

    def weighted(name: str) -> float:
        pairs = [(getattr(c, name), c.area) for c in components if not math.isnan(getattr(c, name))]
        if not pairs:
            return math.nan
        return float(sum(v * a for v, a in pairs) / sum(a for _, a in pairs))

    for name in ("texture_ratio", "noise_ratio", "seam_score", "ghost_score", "privacy_residual"):
        setattr(metrics, name, weighted(name))
    metrics.structure_entries = sum(c.structure_entries for c in components)
    if metrics.structure_entries >= MIN_LINES:
        metrics.structure_continuity = sum(c.structure_continued for c in components) / metrics.structure_entries
    metrics.components = [asdict(c) for c in components]
    return metrics
