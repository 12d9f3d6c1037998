"""Listing photos (issue 13): 4 MP camera photos with real-estate/stock overlays, and their truth.

Photos: the camera photographs of Debian's `lomiri-wallpapers-16.04` and `-20.04` (PHOTOS; the
illustrations of those packages are left out), fetched once with `apt-get download` + `dpkg -x`
into ~/.cache/clean-clarify/lomiri (never committed). Each row is a 2560x1600 frame cut at the
photo's own scale (`run_benchmark.frame_of`), written as JPEG quality 95, as uploads come.

Rows, in the fixed rotation ROTATION (60 rows: 12 text-mask, 12 text-box, 20 text-detect,
10 object, 6 blur):

- `text-mask`: 1-3 listing strings, with the user's mask file: every pixel an overlay touched
  (alpha > 0, outline and anti-aliasing included), dilated 0-2 px; `removal: text`;
- `text-box`: the same, with one box per string (its tight box grown by 6 px); `removal: text`;
- `text-detect`: the same, nothing given: `detect: [text]`, `removal: text`;
- `object`: objects over 2-5% of the frame (`clean_benchmark.paste_objects`, donors cut from the
  other photos), with the mask file;
- `blur`: a house-number plate's box (`run_benchmark.paste_house_number`), `action: blur`.

Strings are drawn with PIL RGBA alpha compositing, 16-160 px high, in DejaVu faces and PIL's own
font, with an outline of 0-4 px, opaque or 30-60% transparent, their colour chosen against the
local background (`dark-on-dark`, `colour-on-colour`, `light-on-light`, and the easy
`light-on-dark`, `dark-on-light`). Each string keeps its alpha map (coverage of fill + outline,
float in [0, 1]) and its classes; the untouched frame is kept as the truth.

    from benchmarks.listings import make_rows, load_truth, string_region
    manifest, cases = make_rows(folder, 60, seed=2024)

On disk under `folder`: `manifest.parquet`, `images/NNN.jpg` (the inputs), `masks/NNN.png`,
`truth/NNN.png` (the untouched frames), `truth/NNN.npz` (the strings' alpha maps) and
`truth.json` (the cases without pixels).
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.clean_benchmark import CACHE, paste_objects
from benchmarks.run_benchmark import FRAME, frame_of, paste_house_number

PACKAGES = ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")
# The camera photographs of those packages; the rest (Fossa, Infinite-Sea, Painting-Colors, umang,
# warty, lomiri-default, analogpattern) are illustrations.
PHOTOS = ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Kleiber_by_Lukas_Baubkus",
          "Picture_0B_by_freespace", "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede",
          "aitzgorri_by_Aitzol_Berasategi", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
          "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
          "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")
KINDS = ("text-mask", "text-box", "text-detect", "object", "blur")
TEXT_KINDS = ("text-mask", "text-box", "text-detect")
STRINGS = ("SOLD", "FOR SALE", "OPEN HOUSE SUN 2-4", "Call 555-7788", "© stockphoto", "JUST LISTED",
           "PRICE REDUCED", "3 BD | 2 BA", "www.realty-example.com", "NEW", "UNDER CONTRACT", "$489,000")
DEJAVU = "/usr/share/fonts/truetype/dejavu/"
FONTS = {"sans": "DejaVuSans.ttf", "sans-bold": "DejaVuSans-Bold.ttf", "serif": "DejaVuSerif.ttf",
         "serif-bold": "DejaVuSerif-Bold.ttf", "condensed": "DejaVuSansCondensed.ttf", "mono": "DejaVuSansMono.ttf",
         "extralight": "DejaVuSans-ExtraLight.ttf", "pil-default": None}
RELATIONS = ("dark-on-dark", "colour-on-colour", "light-on-light", "light-on-dark", "dark-on-light")
# The colour relation asked of each string in turn (over all rows): the hard three twice as often.
RELATION_CYCLE = ("dark-on-dark", "colour-on-colour", "light-on-light", "light-on-dark", "dark-on-dark",
                  "colour-on-colour", "light-on-light", "dark-on-light")
PALETTE = ((220, 30, 30), (255, 215, 0), (255, 140, 0), (40, 190, 60), (30, 90, 230), (200, 40, 200),
           (0, 200, 220), (150, 60, 20))
MARGIN = 20  # strings stay this far from the frame's edge and from each other


def _rotation(weights: dict[str, int]) -> tuple[str, ...]:
    """Kinds spread evenly over one cycle: each kind at (j + 0.5) / weight of the way through."""
    slots = sorted((((j + 0.5) / w, k) for k, w in enumerate(weights.values()) for j in range(w)))
    names = list(weights)
    return tuple(names[k] for _, k in slots)


# 30 rows a cycle: 60 rows are 12 text-mask, 12 text-box, 20 text-detect, 10 object, 6 blur.
ROTATION = _rotation({"text-detect": 10, "text-mask": 6, "text-box": 6, "object": 5, "blur": 3})


def lomiri_photos(cache: Path = CACHE) -> dict[str, Path]:
    """Paths of PHOTOS, the packages fetched once into `cache`/lomiri as the other benchmarks do."""
    target = cache / "lomiri"
    root = target / "root" / "usr" / "share" / "backgrounds"
    if not all((root / f"{name}.jpg").exists() for name in PHOTOS):
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=target, check=True, capture_output=True, timeout=600)
        for deb in sorted(glob.glob(str(target / "lomiri-wallpapers-*.deb"))):
            subprocess.run(["dpkg", "-x", deb, str(target / "root")], check=True, capture_output=True)
    missing = [name for name in PHOTOS if not (root / f"{name}.jpg").exists()]
    if missing:
        raise SystemExit(f"lomiri-wallpapers lacks {missing}: `apt-get download {' '.join(PACKAGES)}` failed?")
    return {name: root / f"{name}.jpg" for name in PHOTOS}


def read_rgb(path: Path | str) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(pixels[..., ::-1])


def _font(name: str, size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size) if FONTS[name] is None else ImageFont.truetype(DEJAVU + FONTS[name], size)


def _layer(text: str, face: str, height: int, outline: int, fill, stroke, opacity: float):
    """The string alone on a transparent RGBA layer, its ink `height` px high (about), and shrunk to
    fit the frame's width; the layer's alpha is the coverage of fill and outline times `opacity`."""
    from PIL import Image, ImageDraw

    probe = _font(face, 100)
    x0, y0, x1, y1 = probe.getbbox(text, stroke_width=0)
    size = max(8, round(100 * height / max(1, y1 - y0)))
    size = min(size, int(100 * (FRAME[1] - 4 * MARGIN) / max(1, x1 - x0)))
    font = _font(face, size)
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=outline)
    layer = Image.new("RGBA", (x1 - x0 + 4, y1 - y0 + 4), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((2 - x0, 2 - y0), text, font=font, fill=(*fill, 255), stroke_width=outline,
                               stroke_fill=(*stroke, 255))
    pixels = np.asarray(layer).copy()
    pixels[..., 3] = np.round(pixels[..., 3] * opacity).astype(np.uint8)
    return pixels


def _luma(rgb) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _saturation(rgb) -> float:
    return float((max(rgb) - min(rgb)) / max(max(rgb), 1))


def relation_of(fill, background) -> str:
    """The class of a fill colour against the mean colour behind it."""
    lf, lb = _luma(fill), _luma(background)
    if _saturation(fill) > 0.5 and _saturation(background) > 0.2 and abs(lf - lb) < 90:
        return "colour-on-colour"
    if lf < 100 and lb < 100:
        return "dark-on-dark"
    if lf > 150 and lb > 150:
        return "light-on-light"
    return "light-on-dark" if lf >= lb else "dark-on-light"


def _fill_for(relation: str, background: np.ndarray, rng) -> tuple[int, int, int]:
    """A fill colour meant to give `relation` against `background` (mean RGB behind the string)."""
    bg = background.astype(float)
    if relation == "dark-on-dark":
        colour = bg * rng.uniform(0.25, 0.5)
    elif relation == "light-on-light":
        colour = 255 - (255 - bg) * rng.uniform(0.15, 0.4)
    elif relation == "colour-on-colour":
        far = [c for c in PALETTE if np.abs(np.subtract(c, bg)).sum() > 90] or list(PALETTE)
        near = sorted(far, key=lambda c: abs(_luma(c) - _luma(bg)))[:3]
        colour = np.array(near[int(rng.integers(len(near)))], float)
    else:
        colour = np.array((245, 245, 240) if relation == "light-on-dark" else (20, 20, 25), float)
    return tuple(int(v) for v in np.clip(np.round(colour), 0, 255))


def _spot_score(relation: str, mean: np.ndarray) -> float:
    """How well a background (mean RGB) suits `relation`: higher is better."""
    luma, saturation = _luma(mean), _saturation(mean)
    return {"dark-on-dark": -luma, "light-on-light": luma, "colour-on-colour": saturation,
            "light-on-dark": -luma, "dark-on-light": luma}[relation]


def _place(truth: np.ndarray, size: tuple[int, int], taken: list[list[int]], relation: str, rng):
    """Where a (height, width) string goes: the best of 24 free spots for `relation`; None if none is free."""
    height, width = size
    best = None
    for _ in range(24):
        x = int(rng.integers(MARGIN, max(MARGIN + 1, FRAME[1] - width - MARGIN)))
        y = int(rng.integers(MARGIN, max(MARGIN + 1, FRAME[0] - height - MARGIN)))
        box = [x, y, x + width, y + height]
        if any(box[0] < b[2] + MARGIN and b[0] < box[2] + MARGIN and box[1] < b[3] + MARGIN and b[1] < box[3] + MARGIN
               for b in taken):
            continue
        mean = truth[y:y + height:4, x:x + width:4].reshape(-1, 3).mean(0)
        score = _spot_score(relation, mean)
        if best is None or score > best[0]:
            best = (score, box, mean)
    return None if best is None else (best[1], best[2])


def _draw_string(image: np.ndarray, truth: np.ndarray, taken: list[list[int]], k: int, rng) -> dict | None:
    """One listing string composited on `image` (in place); its record with alpha map and classes."""
    text = STRINGS[int(rng.integers(len(STRINGS)))]
    relation = RELATION_CYCLE[k % len(RELATION_CYCLE)]
    face = list(FONTS)[int(rng.integers(len(FONTS)))]
    height = round(float(np.exp(rng.uniform(np.log(16), np.log(160)))))
    outline = int(rng.choice([0, 0, 1, 2, 3, 4]))
    opacity = 1.0 if rng.random() < 0.6 else float(round(rng.uniform(0.3, 0.6), 2))
    probe = _layer(text, face, height, outline, (0, 0, 0), (0, 0, 0), 1.0)
    spot = _place(truth, probe.shape[:2], taken, relation, rng)
    if spot is None:
        return None
    box, mean = spot
    fill = _fill_for(relation, mean, rng)
    stroke = (15, 15, 15) if _luma(fill) > 110 else (240, 240, 240)
    pixels = _layer(text, face, height, outline, fill, stroke, opacity)
    x, y = box[0], box[1]
    h, w = pixels.shape[:2]
    alpha = pixels[..., 3].astype(np.float32) / 255
    under = image[y:y + h, x:x + w].astype(np.float32)
    image[y:y + h, x:x + w] = np.round(under * (1 - alpha[..., None]) + pixels[..., :3] * alpha[..., None]).astype(
        np.uint8)
    ys, xs = np.nonzero(alpha > 0)
    tight = [x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1]
    taken.append(tight)
    ink = tight[3] - tight[1]
    return {"text": text, "origin": [x, y], "box": tight, "alpha": alpha, "fill": list(fill),
            "outline_rgb": list(stroke), "background": [round(float(v), 1) for v in mean],
            "classes": {"style": face, "relation": relation_of(fill, mean), "asked": relation,
                        "size": "small" if ink < 32 else ("large" if ink >= 96 else "medium"), "height": ink,
                        "outline": outline, "opacity": opacity}}


def paste_listing(truth: np.ndarray, rng, k: int) -> tuple[np.ndarray, list[dict]]:
    """1-3 listing strings on a copy of `truth`; `k` (strings drawn before) turns RELATION_CYCLE."""
    image, taken, strings = truth.copy(), [], []
    for j in range(int(rng.integers(1, 4))):
        string = _draw_string(image, truth, taken, k + j, rng)
        if string is not None:
            strings.append(string)
    return image, strings


def string_region(string: dict, shape: tuple[int, int]) -> np.ndarray:
    """The string's pixels P (alpha > 0) as a frame-sized bool mask."""
    region = np.zeros(shape[:2], bool)
    x, y = string["origin"]
    alpha = string["alpha"]
    region[y:y + alpha.shape[0], x:x + alpha.shape[1]] = alpha > 0
    return region


def load_truth(folder: Path | str, case: dict) -> np.ndarray:
    """The untouched frame of a case (RGB)."""
    return read_rgb(Path(folder) / case["truth_uri"])


def _text_row(row: dict, case: dict, image: np.ndarray, strings: list[dict], folder: Path, rng, i: int) -> None:
    row["removal"] = "text"
    if case["kind"] == "text-mask":
        grow = int(rng.integers(0, 3))  # a careful user's brush: 0-2 px past the overlay
        mask = np.zeros(image.shape[:2], bool)
        for string in strings:
            mask |= string_region(string, image.shape)
        if grow:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
            mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        cv2.imwrite(str(folder / "masks" / f"{i:03d}.png"), mask.astype(np.uint8) * 255)
        row["mask_uri"], case["mask_grow"] = f"masks/{i:03d}.png", grow
    elif case["kind"] == "text-box":
        row["boxes"] = [[float(s["box"][0] - 6), float(s["box"][1] - 6), float(s["box"][2] + 6), float(s["box"][3] + 6)]
                        for s in strings]
    else:
        row["detect"] = ["text"]
    np.savez_compressed(folder / "truth" / f"{i:03d}.npz", **{f"alpha_{j}": s["alpha"] for j, s in enumerate(strings)})


def _row(i: int, kind: str, name: str, truth: np.ndarray, donors: dict, folder: Path, rng,
         drawn: int) -> tuple[dict, dict, np.ndarray]:
    """One row: (manifest row, case, input image)."""
    row = {"image_id": f"{i:03d}-{kind}", "image_uri": f"images/{i:03d}.jpg", "mask_uri": None, "boxes": None,
           "removal": "object", "action": "remove", "detect": None}
    case = {"index": i, "image_id": row["image_id"], "kind": kind, "photo": name, "image_uri": row["image_uri"],
            "truth_uri": f"truth/{i:03d}.png", "strings": []}
    if kind in TEXT_KINDS:
        image, strings = paste_listing(truth, rng, drawn)
        case["strings"] = strings
        _text_row(row, case, image, strings, folder, rng, i)
    elif kind == "object":
        image, mask = paste_objects(truth, [d for other, d in donors.items() if other != name], rng)
        cv2.imwrite(str(folder / "masks" / f"{i:03d}.png"), mask.astype(np.uint8) * 255)
        row["mask_uri"] = f"masks/{i:03d}.png"
    else:
        image, box = paste_house_number(truth, rng)
        row.update(action="blur", boxes=[box])
        case["box"] = box
    for key in ("mask_uri", "boxes", "removal", "action", "detect"):
        case[key] = row[key]
    return row, case, image


def make_rows(folder: Path | str, count: int = 60, seed: int = 2024, cache: Path = CACHE) -> tuple[str, list[dict]]:
    """`count` listing rows in turn of ROTATION under `folder`; returns (manifest path, cases).

    A case: image_id, kind, photo, image_uri, truth_uri, mask_uri/boxes/detect/removal/action as in
    the manifest, and `strings` (text rows): text, origin [x, y], tight box, alpha (float32 map
    at origin), fill, classes {style, relation, asked, size, height, outline, opacity}.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    for sub in ("images", "masks", "truth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = lomiri_photos(cache)
    names = list(paths)
    donors = {name: cv2.resize(read_rgb(path), (640, 400), interpolation=cv2.INTER_AREA) for name, path in paths.items()}
    rows, cases = [], []
    for i in range(count):
        kind = ROTATION[i % len(ROTATION)]
        name = names[i] if i < len(names) else names[int(rng.integers(len(names)))]
        truth = frame_of(read_rgb(paths[name]), rng)
        row, case, image = _row(i, kind, name, truth, donors, folder, rng, sum(len(c["strings"]) for c in cases))
        cv2.imwrite(str(folder / row["image_uri"]), np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(folder / case["truth_uri"]), np.ascontiguousarray(truth[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        rows.append(row)
        cases.append(case)
    schema = pa.schema([("image_id", pa.string()), ("image_uri", pa.string()), ("mask_uri", pa.string()),
                        ("boxes", pa.list_(pa.list_(pa.float64()))), ("removal", pa.string()),
                        ("action", pa.string()), ("detect", pa.list_(pa.string()))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "manifest.parquet")
    public = [{**c, "strings": [{k: v for k, v in s.items() if k != "alpha"} for s in c["strings"]]} for c in cases]
    (folder / "truth.json").write_text(json.dumps({"seed": seed, "count": count, "cases": public}, indent=1))
    return str(folder / "manifest.parquet"), cases


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    manifest, made = make_rows(args.folder, args.rows, args.seed)
    print(manifest, {kind: sum(c["kind"] == kind for c in made) for kind in KINDS})
