"""Finished work, keyed by content, so that reruns and daily runs recompute only what changed.

A row's key hashes everything that decides its output bytes: its id (the seed of any random
search), the input image's bytes, the mask
file's bytes, the boxes, polygons, removal class, action and detectors, the settings that change
pixels, and the versions of the code and of the engines. The store lives beside the releases
(`OUT/.cache/<ab>/<key>.<ext>` and `<key>.json`); the JSON is written last, so it is the
completion marker: a worker killed between the two leaves no marker and the row is recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata

from tasks.uris import RowError, copy, exists, join, read_bytes, write_bytes

# Record fields that depend on the content alone (not on the row's id, position or timing).
CONTENT_FIELDS = (
    "status", "sha256", "format", "width", "height", "action", "removal", "engine", "clarify",
    "mask_fraction", "outside_changed", "texture_ratio", "noise_ratio", "seam_score",
    "structure_continuity", "structure_entries", "ghost_score", "text_detected", "privacy_residual", "components",
    "flags", "clean_seconds", "measure_seconds", "extension",
)


@functools.cache
def _package_version() -> str:
    return metadata.version("clean-clarify")  # reads dist-info from disk: once per worker, not per row


def content_key(row: dict, image_bytes: bytes, mask_bytes: bytes | None, config, engine_versions: dict) -> str:
    digest = hashlib.sha256()
    spec = {
        # The id seeds every random search, so two ids with the same bytes are two pieces of work.
        "image_id": row["image_id"],
        "image": hashlib.sha256(image_bytes).hexdigest(),
        "mask": hashlib.sha256(mask_bytes).hexdigest() if mask_bytes is not None else None,
        "boxes": row.get("boxes"),
        "polygons": row.get("polygons"),
        "removal": row.get("removal") or "object",
        "action": row.get("action") or "remove",
        "detect": sorted(row.get("detect") or []),
        "settings": config.pixel_digest(),
        "code": _package_version(),
        "engines": engine_versions,
    }
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _paths(cache_uri: str, key: str) -> tuple[str, str]:
    folder = join(cache_uri, key[:2])
    return join(folder, f"{key}.json"), join(folder, key)


def lookup(cache_uri: str, key: str) -> dict | None:
    """The cached record for `key`, or None when this content was never finished."""
    marker, _ = _paths(cache_uri, key)
    if not exists(marker):
        return None
    try:
        return json.loads(read_bytes(marker, what="cache record"))
    except (RowError, ValueError):
        return None  # a damaged marker means: compute again


def restore(cache_uri: str, key: str, record: dict, target_uri: str) -> None:
    _, stem = _paths(cache_uri, key)
    copy(stem + record["extension"], target_uri)


def store(cache_uri: str, key: str, record: dict, data: bytes) -> None:
    marker, stem = _paths(cache_uri, key)
    write_bytes(stem + record["extension"], data)
    write_bytes(marker, json.dumps({k: record.get(k) for k in CONTENT_FIELDS}).encode())
