"""Text removal benchmark: telea on the box vs PatchMatch on the box vs the `text` engine.

Cases: the photographs scikit-image ships, at native size, with strings pasted by PIL in several
fonts, sizes and styles (solid light/dark/colour, outlined captions, semi-transparent watermarks);
the untouched photo is the truth. Two modes:

- `with mask`: the row gives the text's box (the tight box grown by 6 px, as an annotator draws);
- `detect`: nothing is given; the `text` detector (PP-OCR DB, bundled with rapidocr) finds it.
  Box engines fill the detected line regions; the `text` engine fills their strokes.

Scores per engine and mode: OCR residual (share of pasted strings rapidocr's recogniser still
reads when pointed at the string's box grown by 4 px, fuzzy case-insensitive match >= 0.6), `struct` (benchmarks/metrics.py:
SSIM of sigma-3 blurred luminance vs truth, over the true box), and seconds per image for the
whole removal step (mask building and detection included); and seconds on 2560x1600 frames
(mirror-tiled photos with text).

    .venv/bin/python benchmarks/text_benchmark.py            # 36 cases + 2 frames, a few minutes
    .venv/bin/python benchmarks/text_benchmark.py --quick    # a third of the cases, one timing repeat

Writes benchmarks/results/text.md and benchmarks/results/text_examples.png.
"""

from __future__ import annotations

import argparse
import difflib
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics import structure
from tasks.clean import EditContext
from tasks.clean.text import TextRemover
from tasks.config import Config
from tasks.detect.text import TextDetector, text_reader
from tasks.masks import mask_components

RESULTS = ROOT / "benchmarks" / "results"
FRAME = (1600, 2560)
READ = 0.6  # fuzzy match at which the OCR counts as still reading the string
WORDS = ["Summer Sale", "SAMPLE", "Holiday 2024", "Photo by Anna", "CONFIDENTIAL", "Breaking News",
         "www.example.com", "Do Not Copy", "Paris, France", "Limited Offer", "Proof Only", "Welcome Home"]
STYLES = ["light", "dark", "colour", "outlined", "watermark-40", "watermark-60"]
SYSTEM_FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"]


def photos() -> dict[str, np.ndarray]:
    from skimage import data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
                "rocket": data.rocket(), "brick": data.brick(), "grass": data.grass(), "camera": data.camera(),
                "motorcycle": data.stereo_motorcycle()[0], "coins": data.coins()}


def fonts(size: int) -> list[ImageFont.FreeTypeFont]:
    """Pillow's own scalable font, and common system fonts where the machine has them."""
    return [ImageFont.load_default(size=size)] + [ImageFont.truetype(p, size) for p in SYSTEM_FONTS if os.path.exists(p)]


def paste(photo: np.ndarray, text: str, xy, font, style: str) -> tuple[np.ndarray, list[int]]:
    stroke, outline = 0, None
    if style == "light":
        fill = (255, 255, 255, 255)
    elif style == "dark":
        fill = (15, 15, 15, 255)
    elif style == "colour":
        fill = (255, 210, 0, 255)
    elif style == "outlined":
        fill, stroke, outline = (255, 255, 255, 255), max(1, font.size // 14), (0, 0, 0, 255)
    else:
        fill = (255, 255, 255, round(255 * int(style.split("-")[1]) / 100))
    base = Image.fromarray(photo).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.text(xy, text, font=font, fill=fill, stroke_width=stroke, stroke_fill=outline)
    out = np.asarray(Image.alpha_composite(base, layer).convert("L" if photo.ndim == 2 else "RGB"))
    return out, list(draw.textbbox(xy, text, font=font, stroke_width=stroke))


@dataclass
class Case:
    name: str
    style: str
    text: str
    truth: np.ndarray
    image: np.ndarray
    box: list[int]  # tight [x0, y0, x1, y1]

    def region(self, pad: int = 6) -> np.ndarray:
        h, w = self.truth.shape[:2]
        x0, y0, x1, y1 = self.box
        m = np.zeros((h, w), bool)
        m[max(0, y0 - pad):min(h, y1 + pad), max(0, x0 - pad):min(w, x1 + pad)] = True
        return m

    def window(self, pad: int = 40) -> tuple[slice, slice]:
        h, w = self.truth.shape[:2]
        x0, y0, x1, y1 = self.box
        return slice(max(0, y0 - pad), min(h, y1 + pad)), slice(max(0, x0 - pad), min(w, x1 + pad))


def build_cases(count: int, rng) -> list[Case]:
    pics = photos()
    names = list(pics)
    cases = []
    for i in range(count):
        name, style = names[i % len(names)], STYLES[i % len(STYLES)]
        truth = pics[name]
        h, w = truth.shape[:2]
        size = int(rng.choice([16, 20, 26, 34, 44, 56]))
        font_list = fonts(size)
        font = font_list[i % len(font_list)]
        text = WORDS[i % len(WORDS)]
        tw, th = font.getbbox(text)[2:]
        if tw + 20 > w:
            font = ImageFont.load_default(size=size * (w - 40) // tw)
            tw, th = font.getbbox(text)[2:]
        xy = (int(rng.integers(10, max(11, w - tw - 10))), int(rng.integers(10, max(11, h - th - 10))))
        image, box = paste(truth, text, xy, font, style)
        cases.append(Case(name, style, text, truth, image, box))
    return cases


class BoxTelea:
    """Baseline: OpenCV's Telea on the whole given region (radius 5)."""

    name = "telea-box"

    def __call__(self, image, mask):
        out = image.copy()
        m = mask.astype(np.uint8)
        for rows, cols in mask_components(mask, 16):
            out[rows, cols] = cv2.inpaint(image[rows, cols], m[rows, cols], 5, cv2.INPAINT_TELEA)
        return out


class BoxPatchMatch:
    """PatchMatch (Barnes et al. 2009, pypatchmatch) on the whole region, per component with a 128 px margin."""

    name = "patchmatch-box"

    def __init__(self):
        from patchmatch import patch_match

        self.pm = patch_match
        self.pm.set_random_seed(0)

    def __call__(self, image, mask):
        out = image.copy()
        for rows, cols in mask_components(mask, 128):
            crop = image[rows, cols]
            rgb = crop if crop.ndim == 3 else np.repeat(crop[..., None], 3, 2)
            filled = self.pm.inpaint(rgb, mask[rows, cols].astype(np.uint8), patch_size=3)
            out[rows, cols] = filled if crop.ndim == 3 else filled[..., 0]
        return out


class Strokes:
    """The `text` engine (its own stroke refinement included in its time)."""

    name = "text (ours)"

    def __init__(self, config):
        self.engine, self.config = TextRemover.from_config(config), config

    def __call__(self, image, mask):
        return self.engine(image, mask, EditContext("bench", "text", "remove", 0, self.config))


def composite(image, out, mask):
    return np.where(mask if image.ndim == 2 else mask[..., None], out, image)


def reads(ocr, image, text) -> float:
    """Fuzzy match of `text` in what rapidocr's recogniser reads on `image`, the line's own window.

    Recognition only: the OCR is pointed at where the string was, which is stricter (and far
    cheaper) than asking it to find the line first.
    """
    result = ocr(image, use_det=False, use_cls=False, use_rec=True)
    found = tuple(t for t in (result.txts or ()) if t)
    candidates = (*found, " ".join(found))
    return max((difflib.SequenceMatcher(None, text.lower(), t.lower()).ratio() for t in candidates), default=0.0)


def run(cases, engines, detector, ocr):
    rows = {}
    examples = {}
    # Detection is the same for every engine: run it once per case and charge its time to each.
    detected = []
    for case in cases:
        started = time.perf_counter()
        detected.append((detector.regions(case.image), time.perf_counter() - started))
    for mode in ("with mask", "detect"):
        for engine in engines:
            residual, structs, seconds = [], [], []
            for i, case in enumerate(cases):
                mask, spent = (case.region(), 0.0) if mode == "with mask" else detected[i]
                started = time.perf_counter()
                if mode == "with mask":
                    mask = case.region()  # building the mask is part of the step
                out = composite(case.image, engine(case.image, mask), mask) if mask.any() else case.image.copy()
                seconds.append(spent + time.perf_counter() - started)
                residual.append(reads(ocr, out[case.window(4)], case.text) >= READ)
                structs.append(structure(out, case.truth, case.region()))
                if mode == "with mask":
                    examples[(engine.name, i)] = out
            rows[(mode, engine.name)] = (float(np.mean(residual)), float(np.mean(structs)),
                                         float(np.median(structs)), float(np.mean(seconds)))
            print(f"{mode:9s} {engine.name:15s} residual {rows[(mode, engine.name)][0]:.3f} "
                  f"struct {rows[(mode, engine.name)][1]:.3f} s/img {rows[(mode, engine.name)][3]:.2f}", flush=True)
    return rows, examples


def frames(rng) -> list[Case]:
    pics = photos()
    out = []
    for name in ("astronaut", "coffee"):
        p = pics[name]
        tile = np.concatenate([p, p[:, ::-1]], axis=1)
        tile = np.concatenate([tile, tile[::-1]], axis=0)
        reps = (int(np.ceil(FRAME[0] / tile.shape[0])), int(np.ceil(FRAME[1] / tile.shape[1])), 1)
        frame = np.ascontiguousarray(np.tile(tile, reps)[:FRAME[0], :FRAME[1]])
        font = ImageFont.load_default(size=64)
        image, box = paste(frame, "Copyright 2024 Studio", (900, 1300), font, "watermark-60" if name == "coffee" else "outlined")
        out.append(Case(name + "-4MP", "frame", "Copyright 2024 Studio", frame, image, box))
    return out


def time_frames(frame_cases, engines, detector, repeats: int):
    table = {}
    for mode in ("with mask", "detect"):
        for engine in engines:
            times = []
            for case in frame_cases:
                for _ in range(repeats):
                    started = time.perf_counter()
                    mask = case.region() if mode == "with mask" else detector.regions(case.image)
                    composite(case.image, engine(case.image, mask), mask)
                    times.append(time.perf_counter() - started)
            table[(mode, engine.name)] = (min(times), statistics.median(times))
            print(f"4MP {mode:9s} {engine.name:15s} best {min(times):.2f}s median {statistics.median(times):.2f}s", flush=True)
    return table


def example_picture(cases, examples, path: Path, picks: int = 4):
    """Rows of crops: input | telea on box | text engine | truth, under 400 KB."""
    rows = []
    chosen = [i for i, c in enumerate(cases) if c.style in ("outlined", "watermark-60", "light", "colour")][:picks]
    for i in chosen:
        case = cases[i]
        win = case.window(24)
        crops = [case.image[win], examples[("telea-box", i)][win], examples[("text (ours)", i)][win], case.truth[win]]
        crops = [c if c.ndim == 3 else np.repeat(c[..., None], 3, 2) for c in crops]
        scale = min(1.0, 300 / crops[0].shape[1])
        crops = [cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for c in crops]
        sep = np.full((crops[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([x for c in crops for x in (c, sep)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    picture = Image.fromarray(np.concatenate(rows, axis=0))
    picture.save(path, format="PNG", optimize=True)
    if path.stat().st_size > 400_000:
        picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=128).save(path, format="PNG", optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a third of the cases, one timing repeat")
    parser.add_argument("--cases", type=int, default=36)
    parser.add_argument("--detect-scales", default="1", help="the detector's passes (detect.text.scales), e.g. 1,2")
    parser.add_argument("--seed", type=int, default=7, help="another seed draws other cases: a held-out check "
                        "(results go to text_<seed>_<cases>.md, the pictures are left alone)")
    args = parser.parse_args()
    scales = [float(x) for x in args.detect_scales.split(",")]
    held_out = args.seed != 7 or args.cases != 36 or scales != [1.0]
    rng = np.random.default_rng(args.seed)
    count = args.cases // 3 if args.quick else args.cases
    cases = build_cases(count, rng)
    config = Config(detect={"text": {"scales": scales}})
    detector, ocr = TextDetector.from_config(config), text_reader()
    engines = [BoxTelea()]
    try:
        engines.append(BoxPatchMatch())
    except ImportError:
        print("pypatchmatch is not installed: PatchMatch left out (pip install pypatchmatch)")
    engines.append(Strokes(config))
    started = time.perf_counter()
    rows, examples = run(cases, engines, detector, ocr)
    frame_table = time_frames(frames(rng), engines, detector, 1 if args.quick else 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not held_out:
        example_picture(cases, examples, RESULTS / "text_examples.png")
    readable = np.mean([reads(ocr, c.image[c.window(4)], c.text) >= READ for c in cases])
    lines = [
        "# Text removal benchmark",
        "",
        f"`.venv/bin/python benchmarks/text_benchmark.py{' --quick' if args.quick else ''}"
        f"{f' --seed {args.seed} --cases {args.cases}' if held_out else ''}"
        f"{f' --detect-scales {args.detect_scales}' if scales != [1.0] else ''}` on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, onnxruntime CPU; {len(cases)} cases (scikit-image photos at native size, "
        f"strings in {len(fonts(20))} fonts, sizes 16-56 px, styles {', '.join(STYLES)}); "
        f"rapidocr reads {readable:.0%} of the pasted strings before removal. Total run {time.perf_counter() - started:.0f} s.",
        "",
        "OCR residual: share of pasted strings rapidocr's recogniser, pointed at the string's box (+4 px), still reads after "
        "removal (fuzzy case-insensitive >= 0.6; lower is better, floor 0). "
        "struct: SSIM of sigma-3 blurred luminance vs truth over the text's box (higher is better). "
        "s/img: whole removal step per image, mask building and detection included.",
        "",
        "| mode | engine | OCR residual | struct mean | struct median | s/img | 4 MP best s | 4 MP median s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (mode, name), (residual, mean, median, seconds) in rows.items():
        best, med = frame_table[(mode, name)]
        lines.append(f"| {mode} | {name} | {residual:.3f} | {mean:.3f} | {median:.3f} | {seconds:.2f} | {best:.2f} | {med:.2f} |")
    lines += ["", "4 MP: 2560x1600 mirror-tiled astronaut and coffee frames, one 64 px string each (outlined; 60% watermark).",
              "Timings on a shared 2-core machine are noisy: the 4 MP columns give best and median of the repeats.", "",
              *([] if held_out else ["![input | telea on box | text engine | truth](text_examples.png)"]), ""]
    suffix = f"_{args.seed}_{count}" + ("_scales_" + args.detect_scales.replace(",", "_") if scales != [1.0] else "")
    (RESULTS / (f"text{suffix}.md" if held_out else "text.md")).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
