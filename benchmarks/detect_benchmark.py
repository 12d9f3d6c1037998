"""Text detector recall on listing overlays, with nothing given (`detect: [text]`).

Cases: 4 MP (2560x1600) frames of the lomiri-wallpapers camera photos with real-estate overlays
pasted ("SOLD", "FOR SALE", "Call 555-7788", "(c) stockphoto", 16-160 px, solid, outlined, 30-60%
transparent, some placed dark-on-dark or colour-on-colour on purpose), each string with its own
alpha map. A string is `found` when >= 95% of its text pixels (alpha > 0.1) lie inside the
detector's regions (`lines`, before stroke refinement); `in mask` is the share of all text pixels
inside the final mask (`detector(image)`): pixels outside it stay in the photo. Recall is reported
per class (a string can be in several). False alarms: the same frames without overlays, share with
any detection and mean share of the frame detected. Seconds per frame: what `detector(image)` does
(`lines`, then `refine`) on the overlay frames, onnxruntime on 1 thread (as one pipeline partition).

    .venv/bin/python benchmarks/detect_benchmark.py [--strings 40] [--seed 2024]   # tuning set
    .venv/bin/python benchmarks/detect_benchmark.py --seed 7                        # held out

Writes benchmarks/results/detect.md (seed 2024) or detect_<seed>.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2

from benchmarks.listings import _luma, _saturation, lomiri_photos, paste_listing, read_rgb
from benchmarks.run_benchmark import frame_of
from tasks.detect.text import TextDetector
from tasks.settings import TextDetectConfig

RESULTS = ROOT / "benchmarks" / "results"
FOUND = 0.95  # share of a string's text pixels inside the regions for it to count as found
INK = 0.1  # alpha above which a pixel is a text pixel

CLASSES = ("dark-on-dark", "colour-on-colour", "light", "dark", "saturated", "outlined", "transparent", "small",
           "large")
# The configuration before issue 13's recall work (TextDetector.version "1"), for the comparison.
OLD = {"tile": 0, "contrast_sigma": 0, "look_along": 0}


def classes_of(string: dict) -> list[str]:
    """The benchmark's classes of one `benchmarks.listings` string (it can be in several)."""
    tags = string["classes"]
    fill = string["fill"]
    out = [tags["relation"]] if tags["relation"] in ("dark-on-dark", "colour-on-colour") else []
    out += ["light"] if _luma(fill) > 150 else ["dark"] if _luma(fill) < 100 else []
    out += ["saturated"] if _saturation(fill) > 0.5 else []
    out += ["outlined"] if tags["outline"] else []
    out += ["transparent"] if tags["opacity"] < 1 else []
    out += [tags["size"]] if tags["size"] != "medium" else []
    return out


def listing_frames(strings: int, seed: int) -> list[dict]:
    """Frames of `benchmarks.listings` (its photos, frames and overlays, JPEG 95 as uploaded) until
    `strings` strings are drawn: image, clean (the same frame without overlays) and strings (text,
    classes, frame-sized alpha)."""
    rng = np.random.default_rng(seed)
    paths = list(lomiri_photos().values())
    frames, drawn = [], 0
    while drawn < strings:
        clean = frame_of(read_rgb(paths[len(frames) % len(paths)]), rng)
        image, pasted = paste_listing(clean, rng, drawn)
        _, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        records = []
        for string in pasted:
            alpha = np.zeros(clean.shape[:2], np.float32)
            (x, y), a = string["origin"], string["alpha"]
            alpha[y:y + a.shape[0], x:x + a.shape[1]] = a
            records.append({"text": f"{string['text']} {string['classes']['height']}px fill {tuple(string['fill'])} "
                                    f"on {tuple(round(v) for v in string['background'])} "
                                    f"outline {string['classes']['outline']} opacity {string['classes']['opacity']}",
                            "classes": classes_of(string), "alpha": alpha})
        drawn += len(records)
        frames.append({"image": np.ascontiguousarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1]),
                       "clean": clean, "strings": records})
    return frames


def score_frame(detector: TextDetector, frame: dict) -> tuple[list[dict], float]:
    """Per string: found (by the regions) and its text pixels inside the final mask; and the seconds."""
    started = time.perf_counter()
    lines = detector.lines(frame["image"])
    regions = lines > 0
    mask = detector.refine(frame["image"], lines)  # what detector(image) returns, without detecting twice
    seconds = time.perf_counter() - started
    rows = []
    for string in frame["strings"]:
        ink = string["alpha"] > INK
        total = np.count_nonzero(ink)
        change = np.abs(frame["image"][ink].astype(int) - frame["clean"][ink]).max(axis=-1).mean()
        rows.append({"classes": string["classes"], "text": f"{string['text']}, changed {change:.0f} levels", "pixels": total,
                     "found": np.count_nonzero(ink & regions) >= FOUND * total,
                     "in_mask": np.count_nonzero(ink & mask)})
    return rows, seconds


def evaluate(detector: TextDetector, frames: list[dict]) -> dict:
    rows, seconds, alarms, area = [], [], [], []
    for index, frame in enumerate(frames):
        found, spent = score_frame(detector, frame)
        rows += [{**row, "frame": index} for row in found]
        seconds.append(spent)
        clean = detector(frame["clean"])
        alarms.append(bool(clean.any()))
        area.append(float(clean.mean()))
    return {"rows": rows, "seconds": seconds, "alarms": alarms, "area": area}


def left_in(result: dict) -> str:
    frames = {r["frame"] for r in result["rows"]}
    missed = {r["frame"] for r in result["rows"] if not r["found"]}
    return f"{len(missed) / len(frames):.0%} ({len(missed)}/{len(frames)})"


def table(results: dict[str, dict]) -> list[str]:
    names = list(results)
    lines = ["| class | strings | " + " | ".join(f"found ({n}) | in mask ({n})" for n in names) + " |",
             "|---|---:|" + "---:|---:|" * len(names)]
    for cls in ("all", *CLASSES):
        cells = []
        for name in names:
            rows = [r for r in results[name]["rows"] if cls == "all" or cls in r["classes"]]
            if not rows:
                break
            found = np.mean([r["found"] for r in rows])
            in_mask = sum(r["in_mask"] for r in rows) / max(sum(r["pixels"] for r in rows), 1)
            cells.append(f"{found:.0%} | {in_mask:.0%}")
        if cells:
            lines.append(f"| {cls} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += ["", "Frames (a `detect: [text]` row each) with a string not found: " + ", ".join(
        f"{name} {left_in(result)}" for name, result in results.items()) + "."]
    lines += ["", "| configuration | frames with a false alarm (no overlay) | mean share of the frame detected | "
              "s per 4 MP frame (median) | s (mean) |", "|---|---:|---:|---:|---:|"]
    for name, result in results.items():
        lines.append(f"| {name} | {np.mean(result['alarms']):.0%} ({sum(result['alarms'])}/{len(result['alarms'])}) | "
                     f"{np.mean(result['area']):.4%} | {statistics.median(result['seconds']):.2f} | "
                     f"{statistics.mean(result['seconds']):.2f} |")
    return lines


def misses(result: dict) -> list[str]:
    return [f"- {r['text']!r} ({', '.join(r['classes'])}): {r['in_mask'] / max(r['pixels'], 1):.0%} in mask"
            for r in result["rows"] if not r["found"]]


def thin(result: dict) -> list[str]:
    return [f"- {r['text']!r} ({', '.join(r['classes'])}): {r['in_mask'] / max(r['pixels'], 1):.0%} in mask"
            for r in result["rows"] if r["found"] and r["in_mask"] < 0.9 * r["pixels"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    frames = listing_frames(args.strings, args.seed)
    configs = {"old": TextDetectConfig(**OLD), "tiles": TextDetectConfig(contrast_sigma=0, look_along=0),
               "contrast": TextDetectConfig(look_along=0), "new": TextDetectConfig()}
    results = {name: evaluate(TextDetector(config, device="cpu", threads=1), frames)
               for name, config in configs.items()}
    lines = [
        "# Text detector recall on listing overlays (no mask given)", "",
        f"`python benchmarks/detect_benchmark.py --strings {args.strings} --seed {args.seed}` on {os.cpu_count()} "
        f"CPU cores, onnxruntime 1 thread: {sum(len(f['strings']) for f in frames)} strings on {len(frames)} "
        "2560x1600 frames. `found`: >= 95% of a string's text pixels inside the detector's regions; `in mask`: "
        "share of all text pixels inside the final (refined) mask. `old`: " + repr(OLD) + "; `tiles`: the "
        "network in tiles alone (contrast_sigma 0, look_along 0); `contrast`: with the local-contrast pass "
        "(look_along 0); `new`: TextDetectConfig() defaults, which add the second look along each line.", "",
        *table(results), "",
    ]
    for name, result in results.items():
        lines += [f"Missed by `{name}`:", "", *misses(result), ""]
    lines += ["Found by `new` (regions) but less than 90% of their text pixels in the final, refined mask "
              "(`tasks.masks_text.refine_text_mask`): pixels left in the photo:", "", *thin(results["new"]), ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / ("detect.md" if args.seed == 2024 else f"detect_{args.seed}.md")).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
