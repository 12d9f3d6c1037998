"""Quality measures of a filled region against the untouched photo, on luminance.

Plain functions on uint8 arrays (HxWx3 RGB or HxW grey) and a HxW bool `region`, so every
benchmark scores the same way. All three are ratios or similarities of output vs truth:

- `hf_ratio`: is the fill as detailed as the photo? < 0.5 is a smudge, 0.75-1.33 is good;
- `noise_ratio`: does the fill carry the photo's grain (Immerkaer's estimator)? 1 is right;
- `structure`: SSIM of the blurred luminance: are the shapes (edges, lines, shading) right?
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

# Context kept around the region when filtering, so the filters see real neighbours.
_PAD = 16


def luminance(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma Y as float32 (0-255); grey images pass through."""
    pixels = image.astype(np.float32)
    if pixels.ndim == 2:
        return pixels
    return pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114


def _crop(region: np.ndarray, pad: int = _PAD) -> tuple[slice, slice]:
    ys, xs = np.nonzero(region)
    height, width = region.shape
    return (slice(max(0, ys.min() - pad), min(height, ys.max() + 1 + pad)),
            slice(max(0, xs.min() - pad), min(width, xs.max() + 1 + pad)))


def laplacian_std(image: np.ndarray, region: np.ndarray) -> float:
    """Standard deviation of the 4-neighbour Laplacian of Y inside `region`: the fine detail there."""
    window = _crop(region)
    lap = cv2.Laplacian(luminance(image[window]), cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    return float(lap[region[window]].std())


def hf_ratio(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Laplacian std of the output over that of the truth, inside `region` (1 = as detailed)."""
    return laplacian_std(output, region) / max(laplacian_std(truth, region), 1e-6)


# J. Immerkaer, "Fast Noise Variance Estimation", Computer Vision and Image Understanding 1996.
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def immerkaer_sigma(image: np.ndarray, region: np.ndarray) -> float:
    """Noise sigma by Immerkaer's estimator, restricted to `region`.

    The mask (difference of two Laplacians) cancels image structure up to second order, so the
    mean absolute response measures the noise: sigma = sqrt(pi/2) / 6 * mean(|I * N|).
    """
    window = _crop(region)
    response = cv2.filter2D(luminance(image[window]), cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT)
    return float(np.sqrt(np.pi / 2) / 6 * np.abs(response[region[window]]).mean())


def noise_ratio(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Immerkaer sigma of the output over that of the truth, inside `region` (1 = same grain)."""
    return immerkaer_sigma(output, region) / max(immerkaer_sigma(truth, region), 1e-6)


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
    """All three measures of one filled region."""
    return {
        "hf": hf_ratio(output, truth, region),
        "noise": noise_ratio(output, truth, region),
        "struct": structure(output, truth, region),
    }
