"""The image probes that Measure, the clarifier and the benchmarks read the same way.

Plain functions on numpy arrays. Each caller names its border mode: Measure reads whole crops
(OpenCV's default, reflect-101, for the Laplacian; reflect for Immerkaer), the benchmarks read
padded windows, and the clarifier reflects each crop at its own edges (reflect-101).

- luminance: ITU-R BT.601 luma Y, float32 in 0-255; grey images pass through as float32.
- normalised_blur: a Gaussian average over the pixels a weight allows (normalised convolution).
- Laplacian: the 4-neighbour Laplacian, the fine detail (texture) of a region.
- Immerkaer: J. Immerkaer, "Fast Noise Variance Estimation", CVIU 64(2), 1996. The mask, a
  difference of two Laplacians, cancels image structure up to second order, so the mean absolute
  response measures the noise: sigma = sqrt(pi/2) / 6 * mean(|I * N|).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LAPLACIAN_KERNEL = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
IMMERKAER_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
IMMERKAER_SCALE = math.sqrt(math.pi / 2) / 6  # mean |response| -> noise sigma


LUMA = (0.299, 0.587, 0.114)  # Y of RGB (ITU-R BT.601), the weights every luminance here uses


def luminance(image: np.ndarray) -> np.ndarray:
    """Y of an HxWx3 RGB or HxW grey array, as float32 (0-255)."""
    if image.ndim == 2:
        return image.astype(np.float32)
    r, g, b = (image[..., i].astype(np.float32) for i in range(3))
    return LUMA[0] * r + LUMA[1] * g + LUMA[2] * b


def normalised_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian average of `values` (HxW or HxWxC) over the pixels where `weight` is set."""
    spread = np.maximum(cv2.GaussianBlur(weight.astype(np.float32), (0, 0), sigma), 1e-6)
    weighted = values * (weight[..., None] if values.ndim == 3 else weight)
    blurred = cv2.GaussianBlur(weighted.astype(np.float32), (0, 0), sigma).reshape(values.shape)
    return blurred / (spread[..., None] if values.ndim == 3 else spread)


def laplacian(lum: np.ndarray, border: int = cv2.BORDER_DEFAULT) -> np.ndarray:
    """The 4-neighbour Laplacian of a float32 plane, float32."""
    return cv2.Laplacian(lum, cv2.CV_32F, ksize=1, borderType=border)


def laplacian_std(lum: np.ndarray, region: np.ndarray, border: int = cv2.BORDER_DEFAULT) -> float:
    """Standard deviation of the Laplacian inside `region`: the fine detail there."""
    return float(laplacian(lum, border)[region].std())


def immerkaer(lum: np.ndarray, border: int = cv2.BORDER_REFLECT) -> np.ndarray:
    """Immerkaer's response of a float32 plane, float32."""
    return cv2.filter2D(lum, cv2.CV_32F, IMMERKAER_KERNEL, borderType=border)


def immerkaer_sigma(lum: np.ndarray, region: np.ndarray, border: int = cv2.BORDER_REFLECT) -> float:
    """Noise sigma by Immerkaer's estimator, restricted to `region`."""
    return float(IMMERKAER_SCALE * np.abs(immerkaer(lum, border)[region]).mean())
