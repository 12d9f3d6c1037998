"""Semi-transparent text taken off the photo by inverting its blend, not by inventing what was under it.

A watermark or caption drawn at opacity `a` in colour `c` leaves `observed = (1 - a) * photo + a * c`
on its pixels: the photo is still there, scaled by `s = 1 - a`. Where one (s, c) explains a
string's pixels, `photo = (observed - a * c) / s` gives back the true pixels, the ridge and the
grain under the letters included, which no fill can do (a fill guesses; this measures). This is
the single-image form of the blend inversion in T. Dekel et al., "On the Effectiveness of Visible
Watermarks", CVPR 2017.

The fit, per string: the photo under the letters is first estimated by diffusing the photo around
them (fast marching); the letters' cores (their strokes eroded past the anti-aliased edges) are
then regressed on that estimate, one slope `s` shared by the channels and one offset per channel
(`a * c`), trimmed twice so that the pixels that do not fit (an opaque outline of another colour,
photo a drawn mask took in) leave the fit. Texture under the letters is noise in the dependent
variable, not in the regressor, so it does not bias the slope. Where the background is too even to
show the slope, the ratio of the cores' gradients to the ring's gives it (the blend scales the
photo's gradients by `s`; the letters' own colour has none).

Only the cores that fit are given back; the edges, the outlines and what did not fit are left to
the fill, which then draws on the recovered pixels as on photo. A string whose `s` falls outside
[MIN_SCALE, MAX_SCALE] is opaque (nothing left to give back: the noise would be amplified past use)
or not text over photo, and is left whole to the fill.
"""

from __future__ import annotations

import cv2
import numpy as np

from tasks.masks import mask_components
from tasks.measure import gradient_magnitude

HALO = 2  # px around the strokes the background estimate does not draw on
MIN_SCALE = 0.3  # s = 1 - opacity below this: noise amplified more than 3x, the fill does better
MAX_SCALE = 0.9  # above it the "text" changes the photo by under 10%: not a semi-transparent layer
EDGE = 3  # px eroded off the strokes: the anti-aliased edges and the grown halo, where the opacity varies
MIN_CORE = 200  # core pixels a string needs for a fit
MIN_FIT = 0.6  # share of the core pixels the fit must explain, or the string is no single blend
MIN_GRADIENT_SHARE = 0.5  # the cores' gradients over the ring's must reach this share of the slope
MIN_SPREAD = 6.0  # grey levels: below this spread of the estimated background, the slope comes from gradients
TRIM = 2.5  # robust standard deviations: a core pixel further from the fit is no part of the blend
MAX_BIAS = 4.0  # grey levels: the median offset of the given-back photo from the diffused estimate, per channel
INK = 12.0  # grey levels (RGB distance) from the diffused estimate: a pixel the layer visibly changed
MIN_TOLERANCE = 6.0  # grey levels: the fit's tolerance never goes under this (JPEG noise)


def _robust_sd(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _slope_from_gradients(observed: np.ndarray, core: np.ndarray, ring: np.ndarray) -> float:
    """The blend scales the photo's gradients by s: median gradient on the cores over the ring's."""
    magnitude = gradient_magnitude(observed.mean(axis=-1).astype(np.float32))
    ring_level = float(np.median(magnitude[ring]))
    return float(np.median(magnitude[core])) / ring_level if ring_level > 0 else 1.0


def fit_blend(observed: np.ndarray, estimate: np.ndarray, core: np.ndarray, ring: np.ndarray, checked: bool = True):
    """(s, offsets, fits) of `observed = s * estimate + offsets` on the `core` pixels (HxWxC float32
    crops); `fits`: HxW bool, the core pixels the fit explains. None when no blend fits; `checked`
    False: the trimmed fit as it stands, before the checks that accept it (benchmarks/unblend_benchmark.py)."""
    obs, est = observed[core], estimate[core]
    # Start from the pixels the layer visibly changed: a box's strokes take in photo the layer never
    # covered (it fits s = 1, offsets 0), and a fit over both would sit between them.
    keep = np.linalg.norm(obs - est, axis=1) > INK
    slope, offsets = 1.0, np.zeros(obs.shape[1], dtype=np.float32)
    for _ in range(3):
        if np.count_nonzero(keep) < MIN_CORE:
            return None
        slope, spread = _slope(obs[keep], est[keep])
        if spread < MIN_SPREAD:
            slope = _slope_from_gradients(observed, _on(core, keep), ring)
        offsets = (obs[keep] - slope * est[keep]).mean(axis=0)
        residual = np.linalg.norm(obs - slope * est - offsets, axis=1)
        keep = residual <= max(TRIM * _robust_sd(residual[keep]) + float(np.median(residual[keep])), MIN_TOLERANCE)
    if not checked:
        return slope, offsets, _on(core, keep)
    if not MIN_SCALE <= slope <= MAX_SCALE or keep.mean() < MIN_FIT:
        return None
    fits = _on(core, keep)
    # Flat ink over a smooth photo regresses to any slope (the background drifts under letters that
    # do not follow it); under a blend the photo keeps its gradients, scaled by s, and flat ink has none.
    if _slope_from_gradients(observed, fits, ring) < MIN_GRADIENT_SHARE * slope:
        return None
    # The photo given back must sit where the photo around says it does: a fit pulled off by a second
    # ink (an outline at the same opacity) gives the letters back lighter or darker than the photo.
    given = (obs[keep] - offsets) / slope
    if float(np.abs(np.median(given - est[keep], axis=0)).max()) > MAX_BIAS:
        return None
    return slope, offsets, fits


def _slope(obs: np.ndarray, est: np.ndarray) -> tuple[float, float]:
    """The least-squares slope of `obs` on `est` (N x C, one slope for all channels, an offset each)
    and the spread of `est` it rests on."""
    centred_o, centred_e = obs - obs.mean(axis=0), est - est.mean(axis=0)
    energy = float((centred_e**2).sum())
    return float((centred_o * centred_e).sum() / max(energy, 1e-6)), float(np.sqrt(energy / max(centred_e.size, 1)))


def _on(core: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A HxW bool map: `values` (one per core pixel) put back on the core's pixels."""
    out = np.zeros(core.shape, dtype=bool)
    out[core] = values
    return out


def fit_string(crop: np.ndarray, hole: np.ndarray, core: np.ndarray, ring: int = 6, checked: bool = True):
    """`fit_blend` of one string's crop (HxWx3 or HxW uint8): its strokes `hole`, their `core`, the
    photo diffused from around them as the estimate; None when the crop gives no fit."""
    if np.count_nonzero(core) < MIN_CORE:
        return None
    around = (cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1,) * 2))
              > 0) & ~hole
    if not around.any():
        return None
    # Diffused from a little away from the strokes: what the mask missed of their edges would
    # pull the estimate towards the letters' colour.
    halo = cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * HALO + 1,) * 2))
    estimate = cv2.inpaint(crop, halo, 5, cv2.INPAINT_TELEA)
    observed = crop.reshape(*hole.shape, -1).astype(np.float32)
    return fit_blend(observed, estimate.reshape(observed.shape).astype(np.float32), core, around, checked)


def unblend(image: np.ndarray, strokes: np.ndarray, ring: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(image with the semi-transparent strings' cores given back, the pixels given back).

    image: HxWx3 (or HxW) uint8; strokes: HxW bool, the text's pixels. Pixels outside the returned
    mask are unchanged; strings that no single blend explains are left as they are."""
    out = image.copy()
    recovered = np.zeros(strokes.shape, dtype=bool)
    if not strokes.any():
        return out, recovered
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE + 1, 2 * EDGE + 1))
    cores = cv2.erode(strokes.astype(np.uint8), disk).astype(bool)
    if not cores.any():
        return out, recovered
    thickness = cv2.distanceTransform(np.pad(strokes, 1).astype(np.uint8), cv2.DIST_L2, 3).max()
    # A string's letters share one crop (one fit): the gap between words is a few stroke widths.
    for rows, cols in mask_components(strokes, int(np.clip(4 * thickness, 8, 96))):
        crop = image[rows, cols]
        fit = fit_string(crop, strokes[rows, cols], cores[rows, cols], ring)
        if fit is None:
            continue
        slope, offsets, fits = fit
        observed = crop.reshape(*fits.shape, -1).astype(np.float32)
        photo = np.clip(np.rint((observed[fits] - offsets) / slope), 0, 255).astype(np.uint8)
        target = out[rows, cols] if out.ndim == 3 else out[rows, cols][..., None]
        target[fits] = photo
        recovered[rows, cols] |= fits
    return out, recovered
