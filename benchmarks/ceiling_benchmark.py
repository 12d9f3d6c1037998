"""Fill ceiling on listing text (issue 13): could any fill we have, chosen with the truth, leave no text?

The listing benchmark (`listing_benchmark.py`) counts rows with text left after the default run. This
asks how much of that count a better choice among the fills could remove: each text row of the same
data (`listings.py`: 4 MP lomiri-wallpapers photos, seed 2024 or held-out 7) is filled by every fill
the pipeline has, on the same strokes, and each fill is scored by the listing benchmark's own checks
(`listing_benchmark.string_left`: remnant, layers, letters, shade). A row counts as clearable when at
least one fill leaves no text on it: the truth picks, which no gate can, so the count is a floor for
any rule that picks a fill per row (a retry, another engine per case).

The strokes each row's fills get:

- `text-mask`: the user's mask file, as the pipeline takes it;
- `text-box`: the boxes cut to strokes by `TextRemover.strokes`, as the pipeline cuts them;
- `text-detect`: every pixel the overlay touched (alpha > 0) grown by `text.grow`: a detector and a
  refinement that miss nothing, so what is left is the fill's alone.

The fills (`FILLS`): the `text` engine with its defaults and with each of its alternatives (PatchMatch
on every wide letter, the clone, fast marching or Navier-Stokes on every letter, `text.unblend`), the
`exemplar` engine; and `true blend`: the photo under each semi-transparent string given back with the overlay's
own opacity and colours from the truth (a perfect `text.unblend` fit) where its coverage is whole,
the rest filled by the `text` engine. Clean only: Clarify's regrain, which moves a window's mean
colour little, is not run.

    PYTHONPATH=. .venv/bin/python benchmarks/ceiling_benchmark.py             # seed 2024 (60 rows, 44 text rows)
    PYTHONPATH=. .venv/bin/python benchmarks/ceiling_benchmark.py --seed 7    # held out

Writes benchmarks/results/ceiling.md (ceiling_<seed>.md for another seed). About 11 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.listing_benchmark import string_left
from benchmarks.listings import TEXT_KINDS, load_truth, make_rows, read_rgb, string_region
from tasks.clean.text import TextRemover
from tasks.config import Config
from tasks.registry import get_stage
from tasks.settings import TextConfig
from tasks.stages import EditContext

RESULTS = ROOT / "benchmarks" / "results"
MARGIN = 320  # px of photo round a row's strokes: more than any fill reaches (exemplar's crop margin: 256)
TEXT_FILLS = {"text": TextConfig(), "patch everywhere": TextConfig(smooth_grain=0), "clone": TextConfig(wide_fill="clone"),
              "telea": TextConfig(telea_width=1e6), "ns": TextConfig(telea_width=1e6, method="ns"),
              "unblend": TextConfig(unblend=True)}
FILLS = (*TEXT_FILLS, "exemplar", "true blend")
WHOLE = 0.99  # coverage: a pixel wholly under the layer, whose opacity a fit knows
INK_TOLERANCE = 12.0  # grey levels (worst channel): a layer pixel this near one ink's colour is that ink (JPEG noise / a)


def row_strokes(folder: Path, case: dict, image: np.ndarray, strings: list[dict]) -> np.ndarray:
    """The strokes a row's fills get (see the module's docstring)."""
    if case["kind"] == "text-mask":
        return cv2.imread(str(folder / case["mask_uri"]), cv2.IMREAD_GRAYSCALE) > 0
    if case["kind"] == "text-box":
        boxes = np.zeros(image.shape[:2], bool)
        for x0, y0, x1, y1 in case["boxes"]:
            boxes[int(y0):int(y1), int(x0):int(x1)] = True
        return TextRemover().strokes(image, boxes)
    touched = np.zeros(image.shape[:2], bool)
    for string in strings:
        touched |= string_region(string, image.shape)
    grow = TextConfig().grow
    return cv2.dilate(touched.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)) > 0


def true_blend(image: np.ndarray, truth: np.ndarray, strings: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(image with the photo under each semi-transparent string given back where one ink of it, the
    fill's or the outline's, covers the pixel whole, those pixels): `(observed - a * ink) / (1 - a)`.

    A blend fit knows one opacity and one colour per ink; where the layer's colour is neither (the
    anti-aliased seam between fill and outline, read off the truth as `(observed - (1 - a) * truth) / a`),
    no fit gives the photo back, and the pixel is left to the fill."""
    out, given = image.copy(), np.zeros(image.shape[:2], bool)
    for string in strings:
        opacity = string["classes"]["opacity"]
        if opacity >= 1.0:
            continue
        x, y = string["origin"]
        window = (slice(y, y + string["alpha"].shape[0]), slice(x, x + string["alpha"].shape[1]))
        observed, photo = image[window].astype(np.float32), truth[window].astype(np.float32)
        whole = string["alpha"] / opacity > WHOLE
        layer = (observed - (1 - opacity) * photo) / opacity
        inks = [np.asarray(string["fill"], np.float32)]
        if string["classes"]["outline"] and string.get("outline_rgb"):
            inks.append(np.asarray(string["outline_rgb"], np.float32))
        for ink in inks:
            pure = whole & (np.abs(layer - ink).max(axis=-1) <= INK_TOLERANCE)
            back = (observed - opacity * ink) / (1 - opacity)
            out[window][pure] = np.clip(np.rint(back[pure]), 0, 255).astype(np.uint8)
            given[window] |= pure
    return out, given


def fill_all(image: np.ndarray, truth: np.ndarray, strokes: np.ndarray, strings: list[dict], context: EditContext,
             exemplar) -> dict:
    """Every fill of `strokes`, each as a full frame (computed on a crop MARGIN px round them)."""
    ys, xs = np.nonzero(strokes)
    crop = (slice(max(0, ys.min() - MARGIN), ys.max() + MARGIN + 1), slice(max(0, xs.min() - MARGIN), xs.max() + MARGIN + 1))

    def framed(filled: np.ndarray) -> np.ndarray:
        out = image.copy()
        out[crop] = np.where(strokes[crop][..., None], filled, image[crop])
        return out

    fills = {name: framed(TextRemover(settings)(image[crop], strokes[crop], context)) for name, settings in TEXT_FILLS.items()}
    fills["exemplar"] = framed(exemplar(image[crop], strokes[crop], context))
    given_image, given = true_blend(image, truth, strings)
    fills["true blend"] = framed(TextRemover()(given_image[crop], (strokes & ~given)[crop], context))
    return fills


def score_case(folder: Path, case: dict, exemplar, config: Config) -> dict:
    """Per fill: text left on the row, and its worst string's shade and letters figures."""
    image, truth = read_rgb(folder / case["image_uri"]), load_truth(folder, case)
    strings = case["strings"]  # make_rows keeps each string's alpha maps in memory
    strokes = row_strokes(folder, case, image, strings)
    context = EditContext(case["image_id"], "text", "remove", 0, config, strokes_refined=True)
    result = {}
    for name, out in fill_all(image, truth, strokes, strings, context, exemplar).items():
        verdicts = [string_left(out, image, truth, string) for string in strings]
        result[name] = {"left": any(v["left"] for v in verdicts), "shade": max(v["shade"] for v in verdicts),
                        "letters": max(v["letters"] for v in verdicts)}
    return result


def report(scored: list[tuple[dict, dict]], facts: dict) -> str:
    lines = [f"# Fill ceiling on listing text (seed {facts['seed']})", "",
             f"`PYTHONPATH=. .venv/bin/python benchmarks/ceiling_benchmark.py{facts['flag']}` on {facts['machine']}, "
             f"{facts['seconds']:.0f} s. {len(scored)} text rows of the listing benchmark, each filled by every fill on "
             "the same strokes (see the module's docstring), scored by the listing benchmark's checks. "
             "Clearable: at least one fill leaves no text (the truth picks).", "",
             "| kind | rows | text left: `text` (default) | best of the engines' fills | best with a true blend fit too |",
             "|---|---|---|---|---|"]
    engines = [name for name in FILLS if name != "true blend"]
    for kind in TEXT_KINDS:
        rows = [fills for case, fills in scored if case["kind"] == kind]
        default = sum(f["text"]["left"] for f in rows)
        best = sum(all(f[name]["left"] for name in engines) for f in rows)
        blend = sum(all(f[name]["left"] for name in FILLS) for f in rows)
        lines.append(f"| {kind} | {len(rows)} | {default} | {best} | {blend} |")
    lines += ["", "Per fill, rows with text left: " + ", ".join(
        f"{name} {sum(f[name]['left'] for _, f in scored)}" for name in FILLS) + ".", "",
        "Rows no fill clears (shade grey levels / letters remnant of the worst string, per fill):", "",
        "| row | " + " | ".join(FILLS) + " |", "|---|" + "---|" * len(FILLS)]
    for case, fills in scored:
        if all(fills[name]["left"] for name in FILLS):
            lines.append(f"| {case['image_id']} | " + " | ".join(
                f"{fills[n]['shade']:.0f} / {fills[n]['letters']:.2f}" for n in FILLS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024, help="7 is the held-out set")
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", help="comma-separated image ids: these rows alone (implies --no-write)")
    args = parser.parse_args(argv)
    config = Config()
    exemplar = get_stage("clean", "exemplar", config)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        _, cases = make_rows(folder, args.rows, args.seed)
        scored = []
        for case in cases:
            if case["kind"] in TEXT_KINDS and (not args.only or case["image_id"] in args.only.split(",")):
                scored.append((case, score_case(folder, case, exemplar, config)))
                print(case["image_id"], json.dumps({k: v["left"] for k, v in scored[-1][1].items()}), flush=True)
    facts = {"seed": args.seed, "flag": "" if args.seed == 2024 else f" --seed {args.seed}",
             "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "seconds": time.perf_counter() - started}
    text = report(scored, facts)
    print(text)
    if not (args.no_write or args.only):
        (RESULTS / ("ceiling.md" if args.seed == 2024 else f"ceiling_{args.seed}.md")).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
