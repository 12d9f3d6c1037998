"""The release's quality report: one static HTML page that opens offline.

GX Data Docs load their scripts and styles from CDNs, so the page is rendered here instead, with
inline CSS and SVG: counts, validation outcomes, metric histograms, the quarantine reasons, and the
worst images by each metric as before/after thumbnails with the mask outlined.
"""

from __future__ import annotations

import html
import io
import math

import cv2
import numpy as np
import pyarrow as pa
from PIL import Image

from tasks.images import decode_photo
from tasks.masks import build_mask
from tasks.uris import join, read_bytes, resolve, write_bytes

# metric -> (worst first: "low" or "high", what a reader should look for)
WORST = {
    "texture_ratio": ("low", "smudges: fills with less fine detail than their surroundings"),
    "noise_ratio": ("low", "fills without the photo's grain"),
    "seam_score": ("high", "visible steps along the mask boundary"),
    "structure_continuity": ("low", "lines that stop at the hole"),
    "ghost_score": ("high", "text outlines left behind"),
}
THUMB = 220

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
.ok{color:#17702b}.bad{color:#b3261e;font-weight:600}.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #ddd;padding:6px;font-size:12px}.card img{display:block}.pair{display:flex;gap:4px}
.hists{display:flex;flex-wrap:wrap;gap:18px}
"""


def _histogram_svg(values: list[float], title: str, width: int = 260, height: int = 110, bins: int = 20) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return f"<div><b>{html.escape(title)}</b><br><i>no values</i></div>"
    low, high = min(values), max(values)
    if high - low < 1e-9:
        high = low + 1e-9
    counts, _ = np.histogram(values, bins=bins, range=(low, high))
    peak = max(counts.max(), 1)
    bar = width / bins
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 20 - c / peak * (height - 30):.1f}" width="{bar - 1:.1f}" '
        f'height="{c / peak * (height - 30):.1f}" fill="#4a78c2"><title>{c}</title></rect>'
        for i, c in enumerate(counts)
    )
    axis = (f'<text x="0" y="{height - 5}" font-size="10">{low:.2f}</text>'
            f'<text x="{width}" y="{height - 5}" font-size="10" text-anchor="end">{high:.2f}</text>')
    return (f'<div><b>{html.escape(title)}</b> <small>n={len(values)}, median {np.median(values):.2f}</small><br>'
            f'<svg width="{width}" height="{height}">{rects}{axis}</svg></div>')


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


def _thumbnails(row: dict, manifest_row: dict, release_uri: str, job, name: str) -> tuple[str, str] | None:
    """Write before/after crops around the mask; return their paths relative to report/."""
    result_uri = row.get("output_uri") if row.get("status", "published") == "published" else row.get("review_uri")
    if not result_uri:
        return None
    config = job.config
    before = decode_photo(read_bytes(row["source_uri"]), config.max_pixels)
    after = decode_photo(read_bytes(join(release_uri, result_uri)), config.max_pixels)
    mask = build_mask(manifest_row, before.size, lambda uri: read_bytes(resolve(uri, job.manifest_root, config.inputs.allow), what="mask",
                                                                        max_bytes=config.inputs.max_bytes), config.max_pixels)
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
            if r["image_id"] not in made:
                try:
                    made[r["image_id"]] = _thumbnails(r, manifest_rows[r["image_id"]], release_uri, job, f"{len(made):05d}")
                except Exception as exc:  # a report must not fail a release; say what is missing
                    made[r["image_id"]] = None
                    r = dict(r, status=f"{r['status']} (no thumbnail: {exc})")
            pair = made[r["image_id"]]
            images = (f'<div class="pair"><img src="{pair[0]}" alt="before"><img src="{pair[1]}" alt="after"></div>'
                      if pair else "")
            cards.append(f'<div class="card">{images}<b>{html.escape(r["image_id"])}</b> — {metric} '
                         f'{r[metric]:.2f}<br>{html.escape(r["status"])}</div>')
        if cards:
            sections.append(f"<h3>{metric}: {html.escape(meaning)}</h3><div class='cards'>{''.join(cards)}</div>")

    counts = summary["counts"]
    validation = "".join(
        f"<tr><td>{html.escape(suite)}</td><td class='{'ok' if v['success'] else 'bad'}'>"
        f"{'passed' if v['success'] else 'FAILED'}</td><td>{html.escape(', '.join(v['failed']))}</td></tr>"
        for suite, v in summary["validation"].items()
    )
    reasons = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in summary["quarantine_reasons"].items())
    histograms = "".join(
        _histogram_svg(published.column(m).to_pylist(), m) for m in ("texture_ratio", "noise_ratio", "seam_score",
                                                                     "structure_continuity", "ghost_score",
                                                                     "privacy_residual", "mask_fraction")
    )
    status_class = "ok" if summary["status"] == "published" else "bad"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Release {html.escape(summary['release_id'])}</title>
<style>{_CSS}</style></head><body>
<h1>Release {html.escape(summary['release_id'])} — <span class="{status_class}">{html.escape(summary['status'])}</span></h1>
<table><tr><th>input rows</th><td>{counts['input']}</td></tr><tr><th>published</th><td>{counts['published']}</td></tr>
<tr><th>quarantined</th><td>{counts['quarantined']}</td></tr><tr><th>flagged</th><td>{counts['flagged']}</td></tr>
<tr><th>created</th><td>{html.escape(summary['created_at'])}</td></tr></table>
<h2>Validation (Great Expectations suites)</h2><table><tr><th>suite</th><th>outcome</th><th>failed expectations</th></tr>{validation}</table>
<h2>Quarantine reasons</h2><table><tr><th>reason</th><th>rows</th></tr>{reasons or '<tr><td colspan=2>none</td></tr>'}</table>
<h2>Metrics of published images</h2><div class="hists">{histograms}</div>
<h2>Worst images by each metric</h2><p>Before and after, the mask outlined in magenta.</p>{''.join(sections) or '<p>No edited images.</p>'}
</body></html>"""
    write_bytes(join(release_uri, "report", "index.html"), page.encode())
    summary["report_examples"] = {image_id: pair for image_id, pair in made.items() if pair}
    return "report/index.html"
