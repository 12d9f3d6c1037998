"""Measure's text check (`text_still_detected`): does it still catch text left behind, and at what cost?

Cases: strings pasted on 4 MP camera frames (the run benchmark's: mate-backgrounds photos, JPEG
quality) and on the scikit-image photos at their native size, 20-96 px, in the text benchmark's
styles. The mask is what the pipeline removes for a text row: the string's box grown by 6 px, cut
to its strokes. Each case is checked four ways:

- `left`: nothing removed (the text is all there): the check must fire;
- `ghost`: the letters left at a third of their contrast (a fill that kept their outline): should fire;
- `removed`: the `text` engine's removal, as the pipeline does it: should not fire;
- `truth`: the photo without the text: must not fire.

The check runs the detector on a crop around the mask, at a scale: `upscaled` (the crop's short side
brought to `min_side`, 736 px: the check as it was), `frame` (the scale the whole frame is detected
at) and `text` (the default: the crop at the scale the text's height needs, never below the
frame's; `--heights` compares targets). Reported: share of cases where it fires, and milliseconds
per check.

    .venv/bin/python benchmarks/text_check_benchmark.py [--cases 40] [--seed 5] [--heights 96,128]

Writes benchmarks/results/text_check.md.
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

from benchmarks.run_benchmark import STYLES, WORDS, _font, camera_photos, frame_of
from benchmarks.text_benchmark import paste, photos
from tasks.clean import EditContext, composite
from tasks.clean.text import TextRemover
from tasks.config import Config
from tasks.detect.text import TextDetector
from tasks.masks_text import refine_text_mask
from tasks.measure import TEXT_CHECK_HEIGHT, text_still_detected

RESULTS = ROOT / "benchmarks" / "results"


def cases(count: int, rng) -> list[dict]:
    camera = list(camera_photos().values())
    small = list(photos().values())
    out = []
    for i in range(count):
        frame = frame_of(camera[i % len(camera)], rng) if i % 2 == 0 else small[i % len(small)]
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, 2)
        height, width = frame.shape[:2]
        size = int(rng.choice([20, 28, 40, 56, 72, 96] if i % 2 == 0 else [16, 20, 26, 34, 44]))
        font = _font(size, i)
        text = WORDS[i % len(WORDS)]
        tw, th = font.getbbox(text)[2:]
        if tw + 40 > width:
            continue
        xy = (int(rng.integers(10, width - tw - 10)), int(rng.integers(10, height - th - 10)))
        image, box = paste(frame, text, xy, font, STYLES[i % len(STYLES)])
        region = np.zeros((height, width), bool)
        region[max(0, box[1] - 6):box[3] + 6, max(0, box[0] - 6):box[2] + 6] = True
        out.append({"truth": frame, "image": image, "mask": refine_text_mask(image, region, grow=2, margin=12),
                    "name": f"{i}:{size}px {STYLES[i % len(STYLES)]} {width}x{height}"})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--heights", default=str(TEXT_CHECK_HEIGHT), help="text heights to compare, e.g. 40,64,96")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    config = Config()
    detector = TextDetector.from_config(config)
    remover = TextRemover.from_config(config)
    rng = np.random.default_rng(args.seed)
    made = cases(args.cases, rng)
    variants = {
        "left": lambda c: c["image"],
        "ghost": lambda c: np.clip(c["truth"] + (c["image"].astype(int) - c["truth"]) // 3, 0, 255).astype(np.uint8),
        "removed": lambda c: composite(c["image"], remover(c["image"], c["mask"],
                                                           EditContext("x", "text", "remove", 0, config,
                                                                       strokes_refined=True)), c["mask"]),
        "truth": lambda c: np.where(c["mask"][..., None], c["truth"], c["image"]),
    }
    modes = ("upscaled", "frame", *(f"text@{h}" for h in args.heights.split(",")))
    fired = {(m, v): [] for m in modes for v in variants}
    spent = {m: [] for m in modes}
    for case in made:
        for variant, make in variants.items():
            final = make(case)
            for mode in modes:
                started = time.perf_counter()
                mode_name, _, height = mode.partition("@")
                hit = text_still_detected(final, case["mask"], detector, mode=mode_name,
                                          height=int(height or TEXT_CHECK_HEIGHT))
                spent[mode].append(time.perf_counter() - started)
                fired[mode, variant].append(hit)
    lines = [
        "# Measure's text check: still catching what is left, at what cost", "",
        f"`python benchmarks/text_check_benchmark.py --cases {args.cases} --seed {args.seed} --heights {args.heights}` "
        f"on {os.cpu_count()} "
        f"CPU cores, onnxruntime {config.torch_threads} thread: {len(made)} strings (4 MP camera frames and "
        "scikit-image photos, 16-96 px), each checked on four results; share of checks that fire "
        "(should: left, ghost; should not: removed, truth):", "",
        "| check at | left | ghost | removed | truth | ms per check (median) | ms (mean) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in modes:
        shares = " | ".join(f"{np.mean(fired[mode, v]):.0%}" for v in variants)
        lines.append(f"| {mode} | {shares} | {1000 * statistics.median(spent[mode]):.0f} | "
                     f"{1000 * statistics.mean(spent[mode]):.0f} |")
    misses = [f"{c['name']}: {', '.join(f'{m}={fired[m, v][k]}' for m in modes)} ({v})"
              for k, c in enumerate(made) for v in variants
              if len({fired[m, v][k] for m in modes}) > 1]
    lines += ["", "Cases where the scales disagree:", "", *[f"- {m}" for m in misses], ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "text_check.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
