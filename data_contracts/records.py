"""The record of a row: one schema, from which every table and list of columns derives.

A partition writes one record per input row (published or quarantined, never neither); the
cache keeps the fields that depend on content alone; publish splits the records into
`manifest.parquet`, `quarantine.parquet` and `timings.parquet`. Each of those column lists is
named here once, in the order its file has; a test checks that each is made of record fields.
"""

from __future__ import annotations

import pyarrow as pa

ROW_INDEX = "_row"  # position in the input manifest: joins results back to pass-through columns

# Reference-free quality metrics of an edit (tasks/measure.py), per image and per component.
METRIC_COLUMNS = (
    "texture_ratio", "noise_ratio", "seam_score", "structure_continuity", "structure_entries",
    "ghost_score", "privacy_residual",
)
# The per-image metrics whose medians over published rows the release suite bounds.
RELEASE_MEDIANS = ("texture_ratio", "noise_ratio", "structure_continuity")

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

# Seconds a row spent in each step of this run, on the path of the data: read (bytes, content key,
# cache lookup), decode, find (mask file, boxes, polygons, text strokes), detect (the row's
# detectors), clean, clarify, measure (text_check: the text detector's part of it), encode, write
# (the image and its cache entry). Kept in timings.parquet only; null where a step did not run.
STEP_SECONDS = ("read_seconds", "decode_seconds", "find_seconds", "detect_seconds", "clean_seconds",
                "clarify_seconds", "measure_seconds", "text_check_seconds", "encode_seconds", "write_seconds")

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
        ("candidate", pa.string()),  # which of the edits tried was kept ("first" unless the suite refused it)
        ("attempts", pa.list_(pa.string())),  # every edit tried, in order, and what the image suite said of it
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
        ("remnant_score", pa.float64()),  # text: the removed text's signal still in place (tasks/measure.py)
        ("privacy_residual", pa.float64()),
        ("components", pa.list_(COMPONENT_TYPE)),
        ("flags", pa.list_(pa.string())),
        ("content_key", pa.string()),
        ("reused", pa.bool_()),
        # STEP_SECONDS (a reused row has only read and write), then `seconds`: the row end to end.
        *((name, pa.float64()) for name in STEP_SECONDS),
        ("seconds", pa.float64()),
        ("review_uri", pa.string()),  # publish: where an edit the suites refused is kept
    ]
)

# Fields that name the row, its place or this run, not what its content made.
_RUN_FIELDS = ("image_id", ROW_INDEX, "reason", "source_uri", "output_uri", "content_key", "reused", *STEP_SECONDS,
               "seconds", "review_uri")
# What the cache keeps of a finished row: the content's fields, and the output file's extension.
CONTENT_FIELDS = (*(name for name in RECORD_SCHEMA.names if name not in _RUN_FIELDS), "extension")

# manifest.parquet: one row per published image (then the pass-through columns).
PUBLISHED_COLUMNS = (
    "image_id", "output_uri", "source_uri", "sha256", "format", "width", "height", "action", "removal",
    "engine", "candidate", "attempts", "clarify", "mask_fraction", "outside_changed", *METRIC_COLUMNS, "text_detected",
    "remnant_score", "components", "flags", "content_key",
)
# quarantine.parquet: one row per image not published, with its reason (then the pass-through columns).
QUARANTINE_COLUMNS = (
    "image_id", "source_uri", "reason", "review_uri", "action", "removal", "engine", "candidate", "attempts",
    # content_key finds the mask a refused edit used
    "mask_fraction", *METRIC_COLUMNS, "text_detected", "remnant_score", "content_key",
)
# timings.parquet: what varies from run to run, kept apart so the two tables above are reproducible.
TIMING_COLUMNS = ("image_id", "status", "reused", *STEP_SECONDS, "seconds")

# images/metadata.parquet adds `file_name`, and Hugging Face `datasets` names the decoded file `image`.
TRAINING_VIEW_COLUMNS = ("file_name", "image")

# Every column a release writes beside the pass-through ones.
WRITTEN_COLUMNS = frozenset({*RECORD_SCHEMA.names, *PUBLISHED_COLUMNS, *QUARANTINE_COLUMNS, *TIMING_COLUMNS,
                             *TRAINING_VIEW_COLUMNS})
