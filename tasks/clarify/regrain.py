"""`regrain` (the default clarifier): give the filled region the photo's own grain.

It is noise-level-function matching, after the camera-noise models of
C. Liu et al., "Automatic Estimation and Removal of Noise from a Single Image", PAMI 2008:

1. Around each mask component (a crop at full resolution), split the known pixels into a smooth
   base and a high-frequency residual (image minus a Gaussian of sigma 1).
2. The photo's noise level function: the RMS of the Laplacian response per channel and per
   intensity bin, from known pixels minus the strongest 2% (edges of things, not grain). Its
   spatial correlation: the ratio of the Immerkaer to the Laplacian response (how white the grain
   is), and its correlation across channels (demosaicing and JPEG make real grain blotchy and
   partly grey, not white per pixel and per channel).
3. The fill's own level, measured the same way. Where the fill is too smooth, add correlated
   Gaussian noise that makes up the difference (variances add); where it is over 1.2x too sharp,
   scale its high-frequency residual (image minus a Gaussian of sigma 1) down to the target.
4. Feather the change over a few pixels inside the mask edge, so no seam appears.

Noise comes from a torch generator seeded with the row's seed: a rerun gives identical bytes.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from tasks.device import pick_device
from tasks.masks import feather_weight, mask_components

BASE_SIGMA = 1.0  # the residual is the image minus a Gaussian of this sigma
BINS = 6  # intensity bins of the noise level function
MIN_SAMPLES = 64  # a bin needs this many known pixels; else the global level is used
# float64: a parallel reduction sums in an order that depends on the thread count, and float32
# rounding would then flip a few output pixels between a laptop and a Dask worker. In float64 the
# differences stay far below half a grey level, so a release is the same bytes everywhere.
DTYPE = torch.float64


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=DTYPE)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian of (C, H, W) with reflected borders."""
    if sigma <= 0:
        return x
    kernel = _gaussian_kernel(sigma).to(x.device)
    radius = kernel.numel() // 2
    channels = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    y = F.conv2d(y, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return y[0]


def _residual(x: torch.Tensor) -> torch.Tensor:
    return x - _blur(x, BASE_SIGMA)


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=DTYPE)
_IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=DTYPE)


def _filter3(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    channels = x.shape[0]
    weights = kernel.to(x.device).view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
    return F.conv2d(F.pad(x[None], (1, 1, 1, 1), mode="reflect"), weights, groups=channels)[0]


def _spectral_slope(x: torch.Tensor, region: torch.Tensor) -> float:
    """Mean |Immerkaer response| / RMS Laplacian response over `region`, all channels.

    The Immerkaer mask weighs the highest (diagonal) frequencies more than the Laplacian does, so
    the ratio says how white the grain is: white noise scores highest, blotchy grain lower. Mean
    absolute over RMS also folds in how heavy-tailed it is, exactly as Measure's two probes see it.
    """
    return float(_filter3(x, _IMMERKAER)[:, region].abs().mean()
                 / (_filter3(x, _LAPLACIAN)[:, region].pow(2).mean().sqrt() + 1e-6))


@functools.cache
def _slope_table() -> tuple[np.ndarray, np.ndarray]:
    """`_spectral_slope` of white noise blurred by sigma, for sigma on a grid (to invert it)."""
    generator = torch.Generator().manual_seed(0)
    white = torch.randn((1, 256, 256), generator=generator, dtype=DTYPE)
    everywhere = torch.ones((256, 256), dtype=torch.bool)
    sigmas = np.linspace(0.0, 6.0, 61)
    slopes = np.array([_spectral_slope(_blur(white, s), everywhere) for s in sigmas])
    return sigmas, slopes


def _blur_for_slope(slope: float) -> float:
    sigmas, slopes = _slope_table()
    order = np.argsort(slopes)
    return float(np.interp(slope, slopes[order], sigmas[order]))


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian of (C, H, W), as OpenCV's ksize=1 (the Measure step's texture probe)."""
    return _filter3(x, _LAPLACIAN)


def _rms(values: torch.Tensor) -> torch.Tensor:
    return values.pow(2).mean(dim=-1).sqrt()


def _noise_level(response: torch.Tensor, bins: torch.Tensor, region: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """RMS of a high-pass `response` per (intensity bin, channel) over `region` minus structural
    edges; the region's overall level where a bin has too few pixels."""
    usable = region & ~edges
    if usable.sum() < MIN_SAMPLES:
        usable = region
    overall = _rms(response[:, usable])
    levels = overall[None, :].repeat(BINS, 1)
    for b in range(BINS):
        selected = usable & (bins == b)
        if selected.sum() >= MIN_SAMPLES:
            levels[b] = _rms(response[:, selected])
    return levels


def regrain_crop(crop: np.ndarray, hole: np.ndarray, seed: int, feather: float, device: torch.device) -> np.ndarray:
    """Re-grain `hole` inside one crop (HxWxC or HxW uint8); returns the new crop."""
    grey = crop.ndim == 2
    x = torch.from_numpy(crop[None] if grey else np.ascontiguousarray(crop.transpose(2, 0, 1))).to(device, DTYPE)
    hole_t = torch.from_numpy(hole).to(device)
    known = ~hole_t
    if known.sum() < MIN_SAMPLES or hole_t.sum() == 0:
        return crop
    residual = _residual(x)
    base = x - residual
    detail = _laplacian(x)

    # The grain is measured by the Laplacian that Measure uses; the strongest 2% of responses are
    # structure (edges of things), not grain, and stay out of the statistics.
    luma_detail = detail.abs().mean(dim=0)
    edges = luma_detail > torch.quantile(luma_detail[known], 0.98)
    bins = torch.bucketize(base.mean(dim=0), torch.linspace(0, 255, BINS + 1, device=device, dtype=DTYPE)[1:-1])
    target = _noise_level(detail, bins, known, edges)
    current = _noise_level(detail, bins, hole_t, edges)
    target_map = target[bins].permute(2, 0, 1)  # (C, H, W)
    current_map = current[bins].permute(2, 0, 1)

    # Synthetic grain: white noise mixed across channels like the photo's, blurred to its blotchiness.
    generator = torch.Generator(device=device).manual_seed(seed & 0x7FFFFFFFFFFFFFFF)
    channels = x.shape[0]
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=DTYPE)
    calm = known & ~edges
    if channels > 1:
        correlation = torch.corrcoef(residual[:, calm]) + 1e-3 * torch.eye(channels, device=device, dtype=DTYPE)
        noise = torch.einsum("ij,jhw->ihw", torch.linalg.cholesky(correlation), noise)
    noise = _blur(noise, _blur_for_slope(_spectral_slope(x, calm)))
    noise = noise / (_rms(_laplacian(noise).flatten(1))[:, None, None] + 1e-6)  # unit Laplacian level

    # Too smooth: add what is missing (variances add). Too sharp (over 1.2x): scale the residual down.
    # A fill within 15% of the photo's level is left as it is: adding grain to a fill that already
    # has it only makes it noisier than the truth.
    smooth = current_map < 0.85 * target_map
    missing = torch.where(smooth, (target_map.pow(2) - current_map.pow(2)).clamp(min=0).sqrt(), torch.zeros_like(current_map))
    excess = current_map > 1.2 * target_map
    shrink = torch.where(excess, target_map / current_map.clamp(min=1e-6), torch.ones_like(current_map))
    regrained = base + residual * shrink + noise * missing

    weight = torch.from_numpy(feather_weight(hole, feather)).to(device)
    out = x + (regrained - x) * weight[None]
    out = out.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return out[0] if grey else out.transpose(1, 2, 0)


class Regrain:
    name = "regrain"
    version = "1"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, config):
        self.feather = config.regrain.feather
        self.margin = config.regrain.margin
        self.device = pick_device(config.device)

    def __call__(self, image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
        out = image.copy()
        for number, (rows, cols) in enumerate(mask_components(mask, self.margin)):
            out[rows, cols] = regrain_crop(image[rows, cols], mask[rows, cols], context.seed + number, self.feather, self.device)
        return out


