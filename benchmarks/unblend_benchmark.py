"""Unblend fit benchmark: how well `tasks.clean.unblend` measures a semi-transparent string's opacity.

`text.unblend` (opt-in) gives back the photo under a semi-transparent string as
`(observed - a * c) / s`, s = 1 - opacity, with `s` and `a * c` fitted on the string's stroke cores.
An error in `s` scales the photo's texture under the letters by s / fitted s, so the letters come back
as a lighter or darker, flatter or harsher silhouette. This measures the fit alone, with the truth:
every semi-transparent string (30-60% opacity) of the listing benchmark's text rows (`listings.py`,
4 MP lomiri-wallpapers photos), its strokes taken as a user's drawn mask would take them (the
overlay's alpha > 0, grown by `text.grow`), fitted by `unblend.fit_string` exactly as the engine fits
it. Per string: the fitted s over the true 1 - opacity (1 = exact), and whether the fit was accepted
(the engine gives the photo back only then).

    PYTHONPATH=. .venv/bin/python benchmarks/unblend_benchmark.py              # seed 2024 (60 rows)
    PYTHONPATH=. .venv/bin/python benchmarks/unblend_benchmark.py --seed 7     # held out

Writes benchmarks/results/unblend.md (unblend_<seed>.md for another seed). About a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.listings import TEXT_KINDS, make_rows, read_rgb, string_region
from tasks.clean import unblend as blend
from tasks.settings import TextConfig

RESULTS = ROOT / "benchmarks" / "results"
PAD = 30  # px of photo round each string's box: the ring the fit's estimate is diffused from


def string_fit(image: np.ndarray, string: dict, grow: int) -> dict:
    """The engine's fit on one string: its strokes, their cores, `fit_string`; s against the truth."""
    region = string_region(string, image.shape)
    x0, y0, x1, y1 = string["box"]
    rows = slice(max(0, y0 - PAD), y1 + PAD)
    cols = slice(max(0, x0 - PAD), x1 + PAD)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
    hole = cv2.dilate(region[rows, cols].astype(np.uint8), disk) > 0
    edge = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * blend.EDGE + 1,) * 2)
    core = cv2.erode(hole.astype(np.uint8), edge).astype(bool)
    true_s = 1.0 - string["classes"]["opacity"]
    fit = blend.fit_string(image[rows, cols], hole, core)
    if fit is not None:
        return {"ratio": fit[0] / true_s, "accepted": True}
    # Rejected: the slope the trimmed fit reached before the checks that accept it, to see what they kept out.
    unchecked = blend.fit_string(image[rows, cols], hole, core, checked=False)
    return {"ratio": float("nan") if unchecked is None else unchecked[0] / true_s, "accepted": False}


def summary(ratios: list[float]) -> str:
    values = np.array([r for r in ratios if np.isfinite(r)])
    if not len(values):
        return "— | — | — | 0"
    error = np.abs(values - 1)
    return f"{np.median(values):.2f} | {np.mean(error <= 0.15):.0%} | {np.mean(error <= 0.30):.0%} | {len(values)}"


def report(results: list[dict], seed: int, grow: int) -> str:
    accepted = [r["ratio"] for r in results if r["accepted"]]
    rejected = [r["ratio"] for r in results if not r["accepted"]]
    fitted = sum(np.isfinite(r["ratio"]) for r in results)
    lines = [f"# Unblend fit (seed {seed})", "",
             f"`PYTHONPATH=. .venv/bin/python benchmarks/unblend_benchmark.py{'' if seed == 2024 else f' --seed {seed}'}` "
             f"on {platform.machine()}, {os.cpu_count()} CPU cores. {len(results)} semi-transparent strings of the "
             f"listing rows ({fitted} with the {blend.MIN_CORE} core pixels a fit needs), strokes = alpha > 0 "
             f"grown by {grow} px. Fitted s over the true 1 - opacity (1 = exact); "
             "an accepted fit is one the engine would give the photo back with.", "",
             "| fits | median fitted/true s | within 15% | within 30% | strings |", "|---|---|---|---|---|",
             f"| accepted | {summary(accepted)} |", f"| rejected (slope before the checks) | {summary(rejected)} |",
             f"| all | {summary(accepted + rejected)} |", "",
             "| row | string | opacity | height px | outline px | fitted/true s | accepted |", "|---|---|---|---|---|---|---|"]
    for r in results:
        text = r["text"].replace("|", "\\|")  # a table cell
        lines.append(f"| {r['row']} | {text} | {r['opacity']:.2f} | {r['height']} | {r['outline']} | "
                     f"{r['ratio']:.2f} | {'yes' if r['accepted'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024, help="7 is the held-out set: never tune on it")
    parser.add_argument("--no-write", action="store_true", help="print only, leave benchmarks/results alone")
    args = parser.parse_args(argv)
    grow = TextConfig().grow
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        _, cases = make_rows(Path(tmp) / "data", 60, args.seed)
        for case in cases:
            if case["kind"] not in TEXT_KINDS:
                continue
            image = read_rgb(Path(tmp) / "data" / case["image_uri"])
            for string in case["strings"]:
                classes = string["classes"]
                if classes["opacity"] >= 1.0:
                    continue
                fit = string_fit(image, string, grow)
                results.append({"row": case["image_id"], "text": string["text"], "opacity": classes["opacity"],
                                "height": classes["height"], "outline": classes["outline"], **fit})
    text = report(results, args.seed, grow)
    print(text)
    if not args.no_write:
        (RESULTS / ("unblend.md" if args.seed == 2024 else f"unblend_{args.seed}.md")).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
