"""What several test modules need: real photos written to disk, simple holes and fills, contexts,
and the lenient gate for tests of the plumbing. Fixtures live in conftest.py."""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from tasks.config import Config
from tasks.stages import EditContext

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"  # the bold sans the listing tests draw letters in

# For tests of the plumbing (resume, scale-out, storage), not of fill quality: every row is
# published whatever its metrics, so that a borderline fill cannot fail a test about kill -9.
LENIENT_GATE = {
    "gate": {
        "max_quarantine_fraction": 1.0,
        "overrides": [
            {"suite": "image_remove", "expectation": "expect_column_values_to_be_between", "column": column,
             "kwargs": {"min_value": 0.0, "max_value": 1e12}}
            for column in ("texture_ratio", "noise_ratio", "seam_score")
        ] + [
            {"suite": "release", "expectation": "expect_column_median_to_be_between", "column": column,
             "kwargs": {"min_value": 0.0, "max_value": 1e12}}
            for column in ("texture_ratio", "noise_ratio", "structure_continuity")
        ],
    }
}


def save(path, pixels: np.ndarray, fmt: str = "PNG", **kwargs) -> str:
    """Write `pixels` as an image file, making its folder; return the path."""
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **kwargs)
    return path


def ellipse(shape, centre, axes) -> np.ndarray:
    """A filled ellipse as an HxW bool mask (for an image of `shape`)."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask > 0


def telea(image: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's Telea fill of the whole frame: the smooth fill the tests hold others against."""
    return cv2.inpaint(image, mask.astype(np.uint8), radius, cv2.INPAINT_TELEA)


def edit_context(config: Config | None = None, action: str = "remove", seed: int = 1,
                 removal: str = "object") -> EditContext:
    return EditContext("img", removal, action, seed, config or Config())


def release_bytes(output, release_id) -> dict[str, bytes]:
    """manifest.parquet, quarantine.parquet and every image of a release, by relative path."""
    release = output / "releases" / release_id
    files = {name: (release / name).read_bytes() for name in ("manifest.parquet", "quarantine.parquet")}
    for image in sorted((release / "images").iterdir()):
        files[f"images/{image.name}"] = image.read_bytes()
    return files
