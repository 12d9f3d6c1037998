"""One partition's work: every row through find → clean → clarify → measure → write.

`edit_row` is the whole path of one image and never raises: a row ends as a published record or
as a quarantined one with its reason. `process_partition` streams a partition's rows one image at
a time (memory bounded by one photo) and writes the records as one Parquet file.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import traceback

import pyarrow as pa
import torch

from data_contracts.manifest import row_problem
from tasks.clarify import get_clarifier
from tasks.clean import BLUR, EditContext, composite, get_engine
from tasks.detect import DETECTORS, get_detector
from tasks.images import decode_photo, encode_photo
from tasks.masks import build_mask
from tasks.masks_text import refine_text_mask
from tasks.cache import content_key, lookup, restore, store
from tasks.measure import mask_fraction, measure_edit, outside_changed, text_still_detected
from tasks.plan import ROW_INDEX, Job
from tasks.uris import RowError, TransientStorageError, join, read_bytes, read_parquet, resolve, write_bytes, write_parquet

log = logging.getLogger(__name__)


COMPONENT_TYPE = pa.struct(
    [
        ("area", pa.int64()),
        ("ring_width", pa.int32()),
        ("texture_ratio", pa.float64()),
        ("noise_ratio", pa.float64()),
        ("seam_score", pa.float64()),
        ("structure_entries", pa.int64()),
        ("structure_continued", pa.int64()),
        ("ghost_score", pa.float64()),
        ("privacy_residual", pa.float64()),
    ]
)
RECORD_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        (ROW_INDEX, pa.int64()),
        ("status", pa.string()),  # "published" | "quarantined"
        ("reason", pa.string()),
        ("source_uri", pa.string()),
        ("output_uri", pa.string()),
        ("sha256", pa.string()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("action", pa.string()),
        ("removal", pa.string()),
        ("engine", pa.string()),
        ("clarify", pa.string()),
        ("mask_fraction", pa.float64()),
        ("outside_changed", pa.int64()),
        ("texture_ratio", pa.float64()),
        ("noise_ratio", pa.float64()),
        ("seam_score", pa.float64()),
        ("structure_continuity", pa.float64()),
        ("structure_entries", pa.int64()),
        ("ghost_score", pa.float64()),
        ("text_detected", pa.bool_()),
        ("privacy_residual", pa.float64()),
        ("components", pa.list_(COMPONENT_TYPE)),
        ("flags", pa.list_(pa.string())),
        ("content_key", pa.string()),
        ("reused", pa.bool_()),
        ("clean_seconds", pa.float64()),
        ("measure_seconds", pa.float64()),
        ("seconds", pa.float64()),
    ]
)


def seed_for(image_id: str) -> int:
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little")


def output_name(image_id: str, extension: str) -> str:
    """A safe, unique file name under `images/` for `image_id`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._")[:120] or "image"
    if safe != image_id:
        # Two ids that sanitise alike ("a b", "a/b") must not overwrite each other.
        safe = f"{safe}-{hashlib.sha256(image_id.encode()).hexdigest()[:8]}"
    return f"images/{safe}{extension}"


def edit_row(row: dict, job: Job) -> dict:
    """Run one manifest row end to end; return its record (published or quarantined).

    Content already finished by an earlier run (same bytes, same settings, same code) is copied
    from the cache instead of computed: `reused` says which.
    """
    started = time.perf_counter()
    config = job.config
    record: dict = {"image_id": row["image_id"], ROW_INDEX: row[ROW_INDEX], "source_uri": row.get("image_uri"),
                    "reused": False}
    trace = {"stage": "check"}  # where a failure happened, for the quarantine reason
    try:
        problem = row_problem(row)
        if problem:
            raise RowError(problem)
        action, removal = row.get("action") or "remove", row.get("removal") or "object"
        record.update(action=action, removal=removal)

        trace["stage"] = "read"
        source_uri = resolve(row["image_uri"], job.manifest_root)
        record["source_uri"] = source_uri
        source_bytes = read_bytes(source_uri)
        trace["stage"] = "find"
        mask_bytes = read_bytes(resolve(row["mask_uri"], job.manifest_root), what="mask") if row.get("mask_uri") else None
        engine_name = BLUR.name if action == "blur" else getattr(config.engines, removal)
        clarify_name = config.clarify if action == "remove" and "clarify" in config.steps else "none"
        key = content_key(row, source_bytes, mask_bytes, config, {
            "clean": f"{engine_name}:{get_engine(engine_name, config).version}",
            "clarify": f"{clarify_name}:{get_clarifier(clarify_name, config).version}",
        })
        record["content_key"] = key
        cached = lookup(job.cache_uri, key) if job.cache_uri else None
        if cached is not None:
            trace["stage"] = "write"
            relative = output_name(row["image_id"], cached["extension"])
            restore(job.cache_uri, key, cached, join(job.release_uri, relative))
            record.update(cached, output_uri=relative, reused=True)
        else:
            result, data = _compute(row, job, source_bytes, mask_bytes, engine_name, clarify_name, trace)
            record.update(result)
            if job.cache_uri:
                store(job.cache_uri, key, record, data)
    except RowError as exc:
        record.update(status="quarantined", reason=f"{trace['stage']}: {exc}")
    except TransientStorageError:
        raise  # the store's fault, not the row's: the partition task is retried
    except Exception as exc:  # an engine bug must cost one row, not the run
        log.error("row %r failed in %s:\n%s", row["image_id"], trace["stage"], traceback.format_exc())
        record.update(status="quarantined", reason=f"{trace['stage']}: internal error {type(exc).__name__}: {exc}")
    record["seconds"] = time.perf_counter() - started
    return record


def _compute(row: dict, job: Job, source_bytes: bytes, mask_bytes: bytes | None, engine_name: str,
             clarify_name: str, trace: dict) -> tuple[dict, bytes]:
    """Decode, find, clean, clarify, measure and write one image, noting each stage in `trace`."""
    config = job.config
    trace["stage"] = "read"
    photo = decode_photo(source_bytes, config.max_pixels)
    trace["stage"] = "find"
    mask = build_mask(row, photo.size, lambda uri: mask_bytes, config.max_pixels)
    # A row naming a detector that does not exist is quarantined rather than published with its
    # text or faces still in place.
    missing = [name for name in (row.get("detect") or []) if name not in DETECTORS]
    if missing:
        raise RowError(f"detector(s) {missing} requested but not available; available: {sorted(DETECTORS)}")
    for name in row.get("detect") or []:
        mask |= get_detector(name, config)(photo.colour)
    is_text = (row.get("removal") or "object") == "text" and (row.get("action") or "remove") == "remove"
    if is_text and mask.any():
        # Stroke-accurate: the hole is the letters (and their halo), not the box around them, so
        # the photo between the letters is never re-invented, re-grained or counted as edited.
        mask = refine_text_mask(photo.colour, mask, grow=config.text.grow, margin=config.text.margin)
    fraction = mask_fraction(mask)
    if fraction > config.max_mask_fraction:
        raise RowError(
            f"mask covers {fraction:.0%} of the image, over max_mask_fraction {config.max_mask_fraction:.0%}: "
            "nothing would be left to fill from"
        )

    result: dict = {"flags": [], "engine": "none", "clarify": "none", "mask_fraction": fraction}
    final = photo.colour
    clean_started = time.perf_counter()
    if not mask.any():
        result["flags"].append("empty_mask")
    else:
        context = EditContext(row["image_id"], row.get("removal") or "object", row.get("action") or "remove",
                              seed_for(row["image_id"]), config, strokes_refined=is_text)
        trace["stage"] = "clean"
        result["engine"] = engine_name
        final = composite(photo.colour, get_engine(engine_name, config)(photo.colour, mask, context), mask)
        if clarify_name != "none":
            trace["stage"] = "clarify"
            result["clarify"] = clarify_name
            final = composite(photo.colour, get_clarifier(clarify_name, config)(final, mask, context), mask)
    result["clean_seconds"] = time.perf_counter() - clean_started

    trace["stage"] = "measure"
    measure_started = time.perf_counter()
    result["outside_changed"] = outside_changed(photo.colour, final, mask)
    result.update(measure_edit(photo.colour, final, mask, row.get("action") or "remove",
                               row.get("removal") or "object").as_record())
    if is_text and mask.any():
        result["text_detected"] = text_still_detected(final, mask, get_detector("text", config).regions)
    result["measure_seconds"] = time.perf_counter() - measure_started

    trace["stage"] = "write"
    if not mask.any() and photo.orientation == 1:
        data = source_bytes  # nothing to edit and nothing to rotate: publish the file as it came
    else:
        data = encode_photo(photo, final, config.output.jpeg_quality, config.output.webp_quality)
    relative = output_name(row["image_id"], photo.extension)
    write_bytes(join(job.release_uri, relative), data)
    result.update(status="published", output_uri=relative, sha256=hashlib.sha256(data).hexdigest(),
                  format=photo.format, width=photo.size[0], height=photo.size[1], extension=photo.extension)
    return result, data


def process_partition(partition_uri: str, job: Job) -> str:
    """Edit every row of one partition; return the URI of its records file."""
    torch.set_num_threads(job.config.torch_threads)
    rows = read_parquet(partition_uri).to_pylist()
    records = [edit_row(row, job) for row in rows]
    name = partition_uri.rstrip("/").rsplit("/", 1)[-1]
    records_uri = join(job.work_uri, "records", name)
    write_parquet(records_uri, pa.Table.from_pylist(records, schema=RECORD_SCHEMA))
    return records_uri
