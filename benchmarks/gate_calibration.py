"""Calibrate the quality suites: reference-free metrics of known-good and known-bad fills.

For real photos that scikit-image ships (native size), holes covering 2-5% of the frame are filled
by: the ground truth itself ("truth", a perfect fill), each removal engine, a flat mean colour
("flat"), and the truth shifted by 25 grey levels ("seam"). The table gives each metric's
percentiles per fill kind, and the share of each kind that the shipped `image_remove` suite
accepts: truthful fills must pass, smudges, flat fills and seams must not.

    .venv/bin/python benchmarks/gate_calibration.py [--engines telea,exemplar] [--cases-per-photo 3]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2
import numpy as np
import pandas as pd
from skimage import data as photos

from tasks.clean import EditContext, composite
from tasks.config import Config
from tasks.gate import load_suite, validate
from tasks.measure import measure_edit
from tasks.registry import get_stage
from tasks.settings import REMOVAL_ENGINES

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "coins", "hubble_deep_field"]


def load(name: str) -> np.ndarray:
    image = getattr(photos, name)()
    return image[..., :3] if image.ndim == 3 else image


def holes(shape, count: int, rng: np.random.Generator):
    height, width = shape[:2]
    for _ in range(count):
        target = rng.uniform(0.02, 0.05) * height * width
        ratio = rng.uniform(0.6, 1.6)
        ry = int(np.sqrt(target / (np.pi * ratio)))
        rx = int(ry * ratio)
        cy, cx = rng.integers(ry + 4, height - ry - 4), rng.integers(rx + 4, width - rx - 4)
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, (int(cx), int(cy)), (rx, ry), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        yield mask > 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="exemplar,telea", help=f"any of {sorted(REMOVAL_ENGINES)} (lama needs weights)")
    parser.add_argument("--cases-per-photo", type=int, default=3)
    args = parser.parse_args()
    config = Config()
    rng = np.random.default_rng(7)
    rows = []
    for name in PHOTOS:
        truth = load(name)
        for case, mask in enumerate(holes(truth.shape, args.cases_per_photo, rng)):
            select = mask if truth.ndim == 2 else mask[..., None]
            damaged = np.where(select, 0, truth).astype(np.uint8)
            fills = {"truth": truth}
            for engine in args.engines.split(","):
                context = EditContext(f"{name}-{case}", "object", "remove", case, config)
                fills[engine] = composite(damaged, get_stage("clean", engine, config)(damaged, mask, context), mask)
            mean = truth[~mask].mean(axis=0)
            fills["flat"] = np.where(select, np.rint(mean).astype(np.uint8), truth)
            fills["seam"] = np.where(select, np.clip(truth.astype(int) + 25, 0, 255), truth).astype(np.uint8)
            for kind, fill in fills.items():
                metrics = measure_edit(damaged, fill, mask).as_record()
                metrics.pop("components")
                rows.append({"image_id": f"{name}-{case}-{kind}", "kind": kind, "photo": name,
                             "outside_changed": 0, "text_detected": None, **metrics})
    frame = pd.DataFrame(rows)
    suite = load_suite("image_remove")
    outcome = validate(frame.drop(columns=["kind", "photo"]), suite)
    frame["accepted"] = ~frame["image_id"].isin(outcome.row_failures)
    metrics = ["texture_ratio", "noise_ratio", "seam_score", "structure_continuity"]
    print(f"{len(frame) // frame['kind'].nunique()} cases on {len(PHOTOS)} photos\n")
    print("| fill | accepted by image_remove | " + " | ".join(f"{m} p5 / p50 / p95" for m in metrics) + " |")
    print("|---|---|" + "---|" * len(metrics))
    for kind, group in frame.groupby("kind", sort=False):
        cells = []
        for m in metrics:
            values = group[m].dropna()
            cells.append(" / ".join(f"{v:.2f}" for v in np.percentile(values, [5, 50, 95])) if len(values) else "n/a")
        print(f"| {kind} | {group['accepted'].mean():.0%} | " + " | ".join(cells) + " |")
    rejected = frame[(frame["kind"] == "truth") & ~frame["accepted"]]
    for _, row in rejected.iterrows():
        print(f"truth rejected: {row['image_id']}: {outcome.row_failures[row['image_id']]}")


if __name__ == "__main__":
    main()
