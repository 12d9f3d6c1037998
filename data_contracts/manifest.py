"""The input manifest contract: what a Parquet manifest must hold before any work starts.

Table-level problems (a missing required column, a column of the wrong type, duplicate or null
`image_id`s) stop the run with a `ManifestError` naming the column or the ids. Row-level problems
(a missing file, an unknown `removal` value, a bad box) do not: they quarantine that row with a
reason, and the run goes on. `row_problem` is the row-level half of the contract.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from data_contracts.records import WRITTEN_COLUMNS

REMOVAL_CLASSES = ("object", "text")
ACTIONS = ("remove", "blur")


class ManifestError(ValueError):
    """The manifest as a whole breaks the contract; nothing was processed."""


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_list_of_numbers(t: pa.DataType) -> bool:
    return _is_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type))


def _is_list_of_number_lists(t: pa.DataType) -> bool:
    return _is_list(t) and _is_list_of_numbers(t.value_type)


def _is_list_of_strings(t: pa.DataType) -> bool:
    return _is_list(t) and _is_string(t.value_type)


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    type_name: str
    accepts: Callable[[pa.DataType], bool]
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("image_id", True, "string", _is_string, "Unique id of the row; names it in every message."),
    Column("image_uri", True, "string", _is_string, "fsspec URL, or a path relative to the manifest's folder."),
    Column("mask_uri", False, "string", _is_string, "Mask image in the upright frame; nonzero = edit."),
    Column("boxes", False, "list<list<number>>", _is_list_of_number_lists, "Boxes `[x0, y0, x1, y1]` in pixels, upright frame."),
    Column("polygons", False, "list<list<number>>", _is_list_of_number_lists, "Polygons as flat `[x, y, ...]` pixel lists."),
    Column("removal", False, "string", _is_string, "`object` (default) or `text`: picks the engine."),
    Column("action", False, "string", _is_string, "`remove` (default) or `blur` (privacy)."),
    Column("detect", False, "list<string>", _is_list_of_strings, "Detector names to run on the row."),
    Column("partition", False, "string", _is_string, "Rows with the same value are processed by one task."),
)
CONTRACT_COLUMNS = frozenset(c.name for c in COLUMNS)

# Columns the release writes beside the pass-through ones: an input column of the same name
# would be silently shadowed or duplicated.
RESERVED_COLUMNS = WRITTEN_COLUMNS - CONTRACT_COLUMNS - {"image_id"}
MAX_ID_LENGTH = 256


def load_manifest(uri: str) -> tuple[pa.Table, str]:
    """Read a manifest through fsspec, check the table-level contract, and return it with the
    sha256 of the very bytes it was parsed from. A store that does not answer is not a bad
    manifest: `TransientStorageError` passes through (after retries)."""
    from tasks.uris import TransientStorageError, parquet_from_bytes, read_file

    try:
        data = read_file(uri)
    except TransientStorageError:
        raise
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest not found: {uri}") from exc
    except OSError as exc:
        raise ManifestError(f"manifest {uri} could not be read: {exc}") from exc
    try:
        table = parquet_from_bytes(data)  # not pq.read_table(f): see parquet_from_bytes
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"manifest {uri} is not a readable Parquet file: {exc}") from exc
    check_table(table)
    return table, hashlib.sha256(data).hexdigest()


def read_manifest(uri: str) -> pa.Table:
    """Read a manifest through fsspec and check the table-level contract."""
    return load_manifest(uri)[0]


def check_table(table: pa.Table) -> None:
    """Raise `ManifestError` naming every table-level problem at once."""
    problems: list[str] = []
    names = set(table.column_names)
    clashing = sorted(names & RESERVED_COLUMNS)
    if clashing:
        problems.append(f"column(s) {clashing} collide with columns the release writes; rename them in the manifest")
    for col in COLUMNS:
        if col.name not in names:
            if col.required:
                problems.append(f"required column {col.name!r} is missing")
            continue
        dtype = table.schema.field(col.name).type
        if not col.accepts(dtype) and not pa.types.is_null(dtype):
            problems.append(f"column {col.name!r} must be {col.type_name}, got {dtype}")
    if not problems:
        ids = table.column("image_id").to_pylist()
        null_rows = [i for i, v in enumerate(ids) if v is None or v == ""]
        if null_rows:
            problems.append(f"image_id is null or empty in rows {_preview(null_rows)}")
        seen: set[str] = set()
        duplicates: list[str] = []
        for v in ids:
            if v in seen and v not in duplicates:
                duplicates.append(v)
            seen.add(v)
        if duplicates:
            problems.append(f"image_id must be unique; duplicated: {_preview(duplicates)}")
    if problems:
        raise ManifestError("manifest breaks the contract: " + "; ".join(problems))


def row_problem(row: dict[str, Any]) -> str | None:
    """The row-level contract: a reason to quarantine this row, or None."""
    image_id = row.get("image_id") or ""
    if len(image_id) > MAX_ID_LENGTH:
        return f"image_id is {len(image_id)} characters long, over {MAX_ID_LENGTH}"
    if any(unicodedata.category(c).startswith("C") for c in image_id):
        # Line breaks, escapes and direction overrides would forge lines in logs and reports.
        return f"image_id {image_id!r} holds control or formatting characters"
    if not row.get("image_uri"):
        return "image_uri is empty"
    removal = row.get("removal") or "object"
    if removal not in REMOVAL_CLASSES:
        return f"removal must be one of {list(REMOVAL_CLASSES)}, got {removal!r}"
    action = row.get("action") or "remove"
    if action not in ACTIONS:
        return f"action must be one of {list(ACTIONS)}, got {action!r}"
    return None


def _preview(items: list, limit: int = 10) -> str:
    shown = ", ".join(repr(i) if isinstance(i, str) else str(i) for i in items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return shown + more
