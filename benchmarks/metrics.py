"""Quality measures of a filled region against the untouched photo, on luminance.

Plain functions on uint8 arrays (HxWx3 RGB or HxW grey) and a HxW bool `region`, so every
benchmark scores the same way. All three are ratios or similarities of output vs truth:

- `hf_ratio`: is the fill as detailed as the photo? < 0.5 is a smudge, 0.75-1.33 is good;
- `noise_ratio`: does the fill carry the photo's grain (Immerkaer's estimator)? 1 is right;
- `structure`: SSIM of the blurred luminance: are the shapes (edges, lines, shading) right?

and, apart from them, `chroma_ratio`: colour specks (detail of Cr and Cb, not of luminance) the fill
carries against the truth's, where luminance measures are blind to them.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from tasks import probes
from tasks.probes import luminance

# Context kept around the region when filtering, so the filters see real neighbours.
_PAD = 16


def _crop(region: np.ndarray, pad: int = _PAD) -> tuple[slice, slice]:
    ys, xs = np.nonzero(region)
    height, width = region.shape
    return (slice(max(0, ys.min() - pad), min(height, ys.max() + 1 + pad)),
            slice(max(0, xs.min() - pad), min(width, xs.max() + 1 + pad)))


def laplacian_std(image: np.ndarray, region: np.ndarray) -> float:
    """Standard deviation of the 4-neighbour Laplacian of Y inside `region`: the fine detail there."""
    window = _crop(region)
    return probes.laplacian_std(luminance(image[window]), region[window], cv2.BORDER_REFLECT)


def hf_ratio(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Laplacian std of the output over that of the truth, inside `region` (1 = as detailed)."""
    return laplacian_std(output, region) / max(laplacian_std(truth, region), 1e-6)


def immerkaer_sigma(image: np.ndarray, region: np.ndarray) -> float:
    """Noise sigma by Immerkaer's estimator (`tasks.probes`), restricted to `region`."""
    window = _crop(region)
    response = probes.immerkaer(luminance(image[window]), cv2.BORDER_REFLECT)
    # The scale in float64 (Measure's gate keeps its float32 product): the published figures stay.
    return probes.IMMERKAER_SCALE * float(np.abs(response[region[window]]).mean())


def noise_ratio(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Immerkaer sigma of the output over that of the truth, inside `region` (1 = same grain)."""
    return immerkaer_sigma(output, region) / max(immerkaer_sigma(truth, region), 1e-6)


SPECKED = 1.5  # a chroma_ratio over this: specks of colour the truth does not have
CHROMA_FLOOR = 0.5  # grey levels: a photo's colour detail is never taken as smaller (a grey photo has none)


def chroma_detail(image: np.ndarray, region: np.ndarray, sigma: float = 3.0) -> float:
    """RMS of the chroma planes' (Cr, Cb) detail finer than `sigma` inside `region`; NaN for grey."""
    if image.ndim != 3:
        return float("nan")
    window = _crop(region, _PAD + int(3 * sigma))
    chroma = cv2.cvtColor(image[window], cv2.COLOR_RGB2YCrCb).astype(np.float32)[..., 1:]
    detail = chroma - cv2.GaussianBlur(chroma, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return float(np.sqrt((detail[region[window]] ** 2).sum(axis=-1).mean()))


def chroma_ratio(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Colour detail of the output over the truth's inside `region` (1 = as colourful; specks of
    colour the camera never made read far over 1); NaN for grey images."""
    return chroma_detail(output, region) / max(chroma_detail(truth, region), CHROMA_FLOOR)


def structure(output: np.ndarray, truth: np.ndarray, region: np.ndarray, sigma: float = 3.0) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window 1.5) inside `region` of Y blurred by `sigma`.

    The blur removes grain and fine texture, which a fill cannot be expected to reproduce pixel for
    pixel, and keeps what it should: edges, lines and shading continued through the hole.
    """
    window = _crop(region, _PAD + int(3 * sigma))
    blur = lambda a: cv2.GaussianBlur(luminance(a[window]), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    _, ssim = structural_similarity(blur(output), blur(truth), data_range=255.0, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, full=True)
    return float(ssim[region[window]].mean())


def score(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """All three measures of one filled region, and its colour specks (`chroma_ratio`)."""
    return {
        "hf": hf_ratio(output, truth, region),
        "noise": noise_ratio(output, truth, region),
        "struct": structure(output, truth, region),
        "chroma": chroma_ratio(output, truth, region),
    }
