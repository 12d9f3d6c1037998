"""Finished work, keyed by content, so that reruns and daily runs recompute only what changed.

A row's key hashes everything that decides its output bytes: its id (the seed of any random
search), the input image's bytes, the mask
file's bytes, the boxes, polygons, removal class, action and detectors, the settings that change
pixels, the versions of the code and of the engines, the device kind and the versions of the
libraries whose kernels make the bytes (torch, OpenCV, Pillow, onnxruntime, numpy). The store
lives beside the releases (`OUT/.cache/<ab>/<key>.<ext>` and `<key>.json`). Each file is written
whole under a temporary name and renamed (one PUT on object stores); the JSON, written last, is the
completion marker and holds the image's sha256, so a restored entry is hashed again and a damaged
one is computed anew, never published.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import metadata

from data_contracts.records import CONTENT_FIELDS
from tasks.device import pick_device
from tasks.uris import RowError, exists, join, read_bytes, replace_atomically

log = logging.getLogger(__name__)

@functools.cache
def _package_version() -> str:
    return metadata.version("clean-clarify")  # reads dist-info from disk: once per worker, not per row


@functools.cache
def runtime_versions(device: str) -> dict:
    """The device kind and the libraries whose kernels decide output bytes; once per worker."""
    import cv2
    import numpy
    import onnxruntime
    import PIL
    import torch

    return {"device": pick_device(device).type, "torch": torch.__version__, "opencv": cv2.__version__,
            "pillow": PIL.__version__, "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__}


def content_key(row: dict, image_bytes: bytes, mask_bytes: bytes | None, config, engine_versions: dict,
                runtime: dict) -> str:
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
        "runtime": runtime,
    }
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return digest.hexdigest()


MASK_SUFFIX = ".mask.png"


def _paths(cache_uri: str, key: str) -> tuple[str, str]:
    folder = join(cache_uri, key[:2])
    return join(folder, f"{key}.json"), join(folder, key)


@dataclass(frozen=True)
class CachedRow:
    record: dict
    data: bytes  # the published file's bytes, hashed again against record["sha256"]


def lookup(cache_uri: str, key: str) -> CachedRow | None:
    """The finished record and file for `key`, or None when this content was never finished or
    its entry is damaged (then it is computed again and the entry rewritten)."""
    marker, stem = _paths(cache_uri, key)
    if not exists(marker):
        return None
    try:
        record = json.loads(read_bytes(marker, what="cache record"))
        data = read_bytes(stem + record["extension"], what="cached image")
    except (RowError, ValueError, KeyError, TypeError) as exc:
        log.warning("cache entry %s is damaged (%s); computing it again", key, exc)
        return None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        log.warning("cache entry %s does not match its sha256; computing it again", key)
        return None
    return CachedRow(record, data)


def store(cache_uri: str, key: str, record: dict, data: bytes, mask_png: bytes | None = None) -> None:
    """Keep a finished row: its file, the mask it used (for the report), then the marker."""
    marker, stem = _paths(cache_uri, key)
    replace_atomically(stem + record["extension"], data)
    if mask_png is not None:
        replace_atomically(stem + MASK_SUFFIX, mask_png)
    replace_atomically(marker, json.dumps({k: record.get(k) for k in CONTENT_FIELDS}).encode())


def read_mask_png(cache_uri: str, key: str) -> bytes | None:
    """The mask a finished row used, as stored with it; None when it was not kept."""
    try:
        return read_bytes(_paths(cache_uri, key)[1] + MASK_SUFFIX, what="cached mask")
    except RowError:
        return None
