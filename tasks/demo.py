"""A demo dataset from the real photographs that scikit-image ships.

Each row gets something to remove, pasted the way it appears in the wild (a sticker object, a
semi-transparent watermark, a caption), or a face to blur, with masks drawn as an annotator would
(a few pixels larger than the object). The untouched photo is kept in `truth/` as ground truth.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont
from skimage import data as photos

ANNOTATOR_MARGIN = 6  # pixels an annotator's brush overshoots the object


def _ellipse(shape: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int], grow: int = 0) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.ellipse(canvas, centre, (axes[0] + grow, axes[1] + grow), 0, 0, 360, 255, -1, lineType=cv2.LINE_AA)
    return canvas


def paste_object(photo: np.ndarray, patch_source: np.ndarray, centre: tuple[int, int], axes: tuple[int, int]):
    """Paste an elliptical cut of `patch_source` (a 'sticker'); return (image, annotator mask)."""
    height, width = photo.shape[:2]
    alpha = _ellipse((height, width), centre, axes).astype(np.float32)[..., None] / 255.0
    patch = cv2.resize(patch_source, (width, height), interpolation=cv2.INTER_AREA)
    if photo.ndim == 2 and patch.ndim == 3:
        patch = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    if photo.ndim == 3 and patch.ndim == 2:
        patch = np.dstack([patch] * 3)
    base = photo.astype(np.float32) if photo.ndim == 3 else photo.astype(np.float32)[..., None]
    top = patch.astype(np.float32) if patch.ndim == 3 else patch.astype(np.float32)[..., None]
    out = np.rint(base * (1 - alpha) + top * alpha).astype(np.uint8)
    mask = _ellipse((height, width), centre, axes, grow=ANNOTATOR_MARGIN) > 0
    return (out if photo.ndim == 3 else out[..., 0]), mask


def paste_text(photo: np.ndarray, text: str, origin: tuple[int, int], size: int, opacity: int = 255,
               outline: int = 2):
    """Draw `text` (with a dark outline of `outline` px); return (image, box [x0, y0, x1, y1] around it)."""
    img = Image.fromarray(photo).convert("RGBA")
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=size)
    draw.text(origin, text, font=font, fill=(255, 255, 255, opacity), stroke_width=outline,
              stroke_fill=(20, 20, 20, opacity))
    x0, y0, x1, y1 = draw.textbbox(origin, text, font=font, stroke_width=outline)
    merged = Image.alpha_composite(img, overlay).convert("RGB" if photo.ndim == 3 else "L")
    pad = ANNOTATOR_MARGIN
    return np.asarray(merged), [float(x0 - pad), float(y0 - pad), float(x1 + pad), float(y1 + pad)]


def _save(path: str, pixels: np.ndarray, fmt: str, exif_orientation: int | None = None) -> None:
    img = Image.fromarray(pixels)
    kwargs: dict = {"quality": 95} if fmt == "JPEG" else {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def write_demo(folder: str) -> str:
    """Write images/, masks/, truth/ and manifest.parquet under `folder`; return the manifest path."""
    for sub in ("images", "masks", "truth"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    rows: list[dict] = []

    def add(image_id, truth, edited, fmt, partition, caption, labels, *, mask=None, boxes=None,
            polygons=None, removal=None, action=None, orientation=None):
        ext = ".jpg" if fmt == "JPEG" else ".png"
        stored = edited
        if orientation == 6:
            # Stored sideways as a phone does; EXIF orientation 6 says "rotate 90° clockwise to view".
            stored = np.ascontiguousarray(np.rot90(edited, k=1))
        _save(os.path.join(folder, "images", image_id + ext), stored, fmt, orientation)
        _save(os.path.join(folder, "truth", image_id + ".png"), truth, "PNG")
        mask_uri = None
        if mask is not None:
            mask_uri = f"masks/{image_id}.png"
            _save(os.path.join(folder, mask_uri), mask.astype(np.uint8) * 255, "PNG")
        rows.append({
            "image_id": image_id, "image_uri": f"images/{image_id}{ext}", "mask_uri": mask_uri, "boxes": boxes,
            "polygons": polygons, "removal": removal, "action": action, "partition": partition, "caption": caption,
            "split": "train" if partition == "a" else "val", "labels": labels,
        })

    astronaut = photos.astronaut()
    add("astronaut-face", astronaut, astronaut, "PNG", "a", "astronaut portrait, face blurred for privacy",
        ["person"], boxes=[[170.0, 40.0, 290.0, 200.0]], action="blur")

    coffee = photos.coffee()
    edited, mask = paste_object(coffee, photos.chelsea(), centre=(430, 300), axes=(55, 40))
    add("coffee-sticker", coffee, edited, "JPEG", "a", "a cup of coffee", ["cup"], mask=mask)

    chelsea = photos.chelsea()
    # A semi-transparent stock-photo watermark: white at 60% opacity, no outline.
    edited, box = paste_text(chelsea, "(c) STOCK", (120, 120), 44, opacity=150, outline=0)
    add("chelsea-watermark", chelsea, edited, "PNG", "a", "a cat", ["cat"], boxes=[box], removal="text")

    rocket = photos.rocket()
    edited, mask = paste_object(rocket, photos.coffee(), centre=(140, 330), axes=(35, 50))
    ys, xs = np.nonzero(mask)
    hull = cv2.convexHull(np.column_stack([xs, ys]).astype(np.int32))[:, 0, :]
    add("rocket-phone", rocket, edited, "JPEG", "a", "rocket launch, shot on a phone held sideways",
        ["rocket"], polygons=[hull.astype(float).ravel().tolist()], orientation=6)

    brick = photos.brick()
    edited, mask = paste_object(brick, photos.camera(), centre=(256, 300), axes=(45, 30))
    add("brick-object", brick, edited, "PNG", "b", "brick wall", ["wall"], mask=mask)

    grass = photos.grass()
    edited, box = paste_text(grass, "LOT 42", (150, 380), 48)
    add("grass-caption", grass, edited, "PNG", "b", "grass", ["grass"], boxes=[box], removal="text")

    gravel = photos.gravel()
    edited, mask = paste_object(gravel, photos.coins(), centre=(300, 200), axes=(40, 40))
    add("gravel-object", gravel, edited, "PNG", "b", "gravel", ["gravel"], mask=mask)

    camera = photos.camera()
    add("camera-clean", camera, camera, "PNG", "b", "cameraman, nothing to remove", ["person"])

    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("image_id", pa.string()), ("image_uri", pa.string()), ("mask_uri", pa.string()),
        ("boxes", pa.list_(pa.list_(pa.float64()))), ("polygons", pa.list_(pa.list_(pa.float64()))),
        ("removal", pa.string()), ("action", pa.string()), ("partition", pa.string()),
        ("caption", pa.string()), ("split", pa.string()), ("labels", pa.list_(pa.string())),
    ]))
    manifest = os.path.join(folder, "manifest.parquet")
    pq.write_table(table, manifest)
    return manifest
