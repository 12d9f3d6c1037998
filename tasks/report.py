"""The release's quality report: one static HTML page that opens offline.

GX Data Docs load their scripts and styles from CDNs, so the page is rendered here instead, from a
Jinja2 template (`tasks/templates/report.html.j2`, autoescaped) with inline CSS and SVG: counts,
validation outcomes, metric histograms, the quarantine reasons, and the worst images by each metric
as before/after thumbnails with the mask the edit really used outlined (detections and text strokes
included: the Find step keeps it beside the row's cache entry).
"""

from __future__ import annotations

import io
import math

import cv2
import jinja2
import numpy as np
import pyarrow as pa
from PIL import Image

from tasks.cache import read_mask_png
from tasks.images import decode_photo
from tasks.masks import build_mask, mask_from_png
from tasks.uris import join, read_bytes, resolve, write_bytes

# metric -> (worst first: "low" or "high", what a reader should look for)
WORST = {
    "texture_ratio": ("low", "smudges: fills with less fine detail than their surroundings"),
    "noise_ratio": ("low", "fills without the photo's grain"),
    "seam_score": ("high", "visible steps along the mask boundary"),
    "structure_continuity": ("low", "lines that stop at the hole"),
    "ghost_score": ("high", "text outlines left behind"),
}
HISTOGRAMS = ("texture_ratio", "noise_ratio", "seam_score", "structure_continuity", "ghost_score",
              "privacy_residual", "mask_fraction")
THUMB = 220

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("tasks", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _histogram(values: list[float], title: str, width: int = 260, height: int = 110, bins: int = 20) -> dict:
    """What the template draws of one metric: its bars scaled to the box, and the axis ends."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"title": title, "bars": []}
    low, high = min(values), max(values)
    if high - low < 1e-9:
        high = low + 1e-9
    counts, _ = np.histogram(values, bins=bins, range=(low, high))
    peak, step = max(counts.max(), 1), width / bins
    bars = [{"x": i * step, "y": height - 20 - c / peak * (height - 30), "width": step - 1,
             "height": c / peak * (height - 30), "count": int(c)} for i, c in enumerate(counts)]
    return {"title": title, "bars": bars, "count": len(values), "median": float(np.median(values)), "low": low,
            "high": high, "width": width, "height": height}


def _thumbnail(pixels: np.ndarray, mask: np.ndarray, box: tuple[slice, slice]) -> bytes:
    crop = pixels[box]
    crop = np.dstack([crop] * 3) if crop.ndim == 2 else crop.copy()
    contours, _ = cv2.findContours(mask[box].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(crop, contours, -1, (255, 0, 255), max(1, int(max(crop.shape[:2]) / THUMB)))
    image = Image.fromarray(crop)
    image.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _used_mask(row: dict, manifest_row: dict, job, size: tuple[int, int]) -> np.ndarray:
    """The mask the edit used, as the Find step kept it; rebuilt from the manifest row (mask file,
    boxes, polygons: without detections or stroke refinement) only when it was not kept."""
    kept = read_mask_png(job.cache_uri, row["content_key"]) if job.cache_uri and row.get("content_key") else None
    if kept is not None:
        mask = mask_from_png(kept)
        if mask.shape == (size[1], size[0]):
            return mask
    inputs = job.config.inputs
    return build_mask(manifest_row, size, lambda uri: read_bytes(resolve(uri, job.manifest_root, inputs.allow),
                                                                 what="mask", max_bytes=inputs.max_bytes),
                      job.config.max_pixels)


def _thumbnails(row: dict, manifest_row: dict, release_uri: str, job, name: str) -> tuple[str, str] | None:
    """Write before/after crops around the mask; return their paths relative to report/."""
    result_uri = row.get("output_uri") if row.get("status", "published") == "published" else row.get("review_uri")
    if not result_uri:
        return None
    before = decode_photo(read_bytes(row["source_uri"]), job.config.max_pixels)
    after = decode_photo(read_bytes(join(release_uri, result_uri)), job.config.max_pixels)
    mask = _used_mask(row, manifest_row, job, before.size)
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    margin = max(16, int(0.5 * max(ys.max() - ys.min(), xs.max() - xs.min())))
    box = (slice(max(0, ys.min() - margin), ys.max() + margin + 1), slice(max(0, xs.min() - margin), xs.max() + margin + 1))
    paths = (f"thumbs/{name}-before.jpg", f"thumbs/{name}-after.jpg")
    write_bytes(join(release_uri, "report", paths[0]), _thumbnail(before.colour, mask, box))
    write_bytes(join(release_uri, "report", paths[1]), _thumbnail(after.colour, mask, box))
    return paths


def write_report(release_uri: str, published: pa.Table, quarantined: pa.Table, manifest: pa.Table, job, summary: dict) -> str:
    """Render `report/index.html` in the release; return its path relative to the release.

    The before/after thumbnails made are listed in `summary["report_examples"]` (image id →
    paths relative to report/), for the Prefect UI's markdown artifact."""
    rows = [dict(r, status="published") for r in published.to_pylist()]
    rows += [dict(r, status="quarantined") for r in quarantined.to_pylist() if r.get("review_uri")]
    manifest_rows = {r["image_id"]: r for r in manifest.to_pylist()}
    edited = [r for r in rows if (r.get("mask_fraction") or 0) > 0 and r.get("action") == "remove"]

    made: dict[str, tuple[str, str] | None] = {}
    sections = []
    for metric, (direction, meaning) in WORST.items():
        scored = [r for r in edited if r.get(metric) is not None and math.isfinite(r[metric])]
        scored.sort(key=lambda r: r[metric], reverse=direction == "high")
        cards = []
        for r in scored[: job.config.report_worst]:
            status = r["status"]
            if r["image_id"] not in made:
                try:
                    made[r["image_id"]] = _thumbnails(r, manifest_rows[r["image_id"]], release_uri, job, f"{len(made):05d}")
                except Exception as exc:
                    made[r["image_id"]] = None
                    status = f"{status} (no thumbnail: {exc})"
            cards.append({"image_id": r["image_id"], "value": r[metric], "status": status,
                          "thumbnails": made[r["image_id"]]})
        if cards:
            sections.append({"metric": metric, "meaning": meaning, "cards": cards})

    histograms = [_histogram(published.column(m).to_pylist(), m) for m in HISTOGRAMS]
    page = _TEMPLATES.get_template("report.html.j2").render(summary=summary, histograms=histograms, sections=sections)
    write_bytes(join(release_uri, "report", "index.html"), page.encode())
    summary["report_examples"] = {image_id: pair for image_id, pair in made.items() if pair}
    return "report/index.html"
