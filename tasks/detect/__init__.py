"""Detect: find what a row names in its `detect` list, without a hand-drawn mask.

A detector is a class with a `name`, `__init__(config)` that loads its model (once per worker, by
`get_detector`) and `__call__(image) -> mask`:

- `image`: HxWx3 (RGB) or HxW (grey) uint8, upright, full resolution;
- returns an HxW bool mask in the image's frame, True = found.

`text` returns the strokes of the text it finds (a hole as small as the letters); `faces` returns
boxes, for the privacy blur. License plates are not offered: no package this project installs
ships a plate model (opencv-python-headless 5.x ships no cascade files at all).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.detect.faces import FaceDetectConfig, FaceDetector
from tasks.detect.text import TextDetectConfig, TextDetector
from tasks.workers import worker_instance


class DetectConfig(BaseModel):
    """The detectors' settings: `Config.detect`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: TextDetectConfig = TextDetectConfig()
    faces: FaceDetectConfig = FaceDetectConfig()


class Detector(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


DETECTORS: dict[str, type] = {TextDetector.name: TextDetector, FaceDetector.name: FaceDetector}


def get_detector(name: str, config) -> Detector:
    """The worker-wide instance of detector `name` for this config (the model loads on first use)."""
    return worker_instance(DETECTORS[name], config)
