"""`faces`: frontal faces, as boxes to blur, by a multi-block LBP boosted cascade.

P. Viola, M. Jones, "Rapid Object Detection using a Boosted Cascade of Simple Features", CVPR 2001,
with MB-LBP features (S. Liao et al., ICB 2007). opencv-python-headless 5.x ships neither
`cv2.CascadeClassifier` nor the cascade files (`cv2.data.haarcascades` is an empty folder), so this
runs scikit-image's cascade on OpenCV's `lbpcascade_frontalface_opencv.xml`, which scikit-image
ships in `skimage/data`. A face counts when several overlapping windows agree (OpenCV's
`minNeighbors`, here scikit-image's `min_neighbor_number`), which drops most lone false alarms;
for a privacy blur a spare box costs little, a missed face a lot.
"""

from __future__ import annotations

import cv2
import numpy as np

from tasks.settings import FaceDetectConfig
from tasks.stages import DetectStage


class FaceDetector(DetectStage):
    name = "faces"
    version = "1"  # bump when the output bytes change

    def __init__(self, settings: FaceDetectConfig = FaceDetectConfig()):
        from skimage import data
        from skimage.feature import Cascade

        self.settings = settings
        self.cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    @classmethod
    def from_config(cls, config) -> FaceDetector:
        return cls(config.detect.faces)

    def boxes(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes `(x0, y0, x1, y1)` in the image's frame, grown by `grow`."""
        height, width = image.shape[:2]
        scale = min(1.0, self.settings.max_side / max(height, width))
        small = image
        if scale < 1:
            small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
        found = self.cascade.detect_multi_scale(
            img=small, scale_factor=self.settings.scale_factor, step_ratio=1,
            min_size=(self.settings.min_face, self.settings.min_face), max_size=small.shape[:2],
            min_neighbor_number=self.settings.min_neighbors,
        )
        out = []
        for x, y, w, h in ((d["c"], d["r"], d["width"], d["height"]) for d in found):
            g = self.settings.grow
            x0, y0 = (x - g * w) / scale, (y - g * h) / scale
            x1, y1 = (x + w + g * w) / scale, (y + h + g * h) / scale
            out.append((max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))))
        return out

    def __call__(self, image: np.ndarray) -> np.ndarray:
        mask = np.zeros(image.shape[:2], dtype=bool)
        for x0, y0, x1, y1 in self.boxes(image):
            mask[y0:y1, x0:x1] = True
        return mask
