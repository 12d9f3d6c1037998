"""Publish: turn a run's records into a versioned release, atomically.

Layout of `OUT/releases/<release_id>/`: `images/…`, `manifest.parquet` (published rows),
`quarantine.parquet` (every other row, with its reason), `release.json`, and `_SUCCESS`, written
last. `OUT/LATEST` is replaced only after `_SUCCESS` exists, so a reader that follows `LATEST`
never sees a half-written release.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import statistics
import subprocess
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.manifest import CONTRACT_COLUMNS, read_manifest
from tasks.gate import GateFailed, release_failures
from tasks.partition import RECORD_SCHEMA
from tasks.plan import ROW_INDEX, ReleasePlan
from tasks.uris import join, read_parquet, remove_tree, replace_atomically, write_bytes, write_parquet

PUBLISHED_COLUMNS = [
    "image_id", "output_uri", "source_uri", "sha256", "format", "width", "height", "action", "removal",
    "engine", "clarify", "mask_fraction", "outside_changed", "flags", "seconds",
]
QUARANTINE_COLUMNS = ["image_id", "source_uri", "reason", "seconds"]


@functools.cache
def code_version() -> dict:
    version = {"package": "clean-clarify", "version": metadata.version("clean-clarify")}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            version["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def _with_passthrough(records: pa.Table, columns: list[str], manifest: pa.Table) -> pa.Table:
    # `take` by row position keeps every Arrow type (lists, structs) exactly as the user wrote it;
    # a hash join would not accept list columns.
    out = records.select(columns)
    rows = manifest.take(records.column(ROW_INDEX))
    for name in manifest.column_names:
        if name not in CONTRACT_COLUMNS or name == "partition":
            out = out.append_column(manifest.schema.field(name), rows.column(name))
    return out


def _reason_counts(quarantined: pa.Table) -> dict[str, int]:
    # Count kinds of problem ("read: image not found"), not messages that differ by path or size.
    def kind(reason: str) -> str:
        stage, _, message = reason.partition(": ")
        return f"{stage}: {message.split(':', 1)[0]}"

    return dict(collections.Counter(kind(r) for r in quarantined.column("reason").to_pylist()).most_common())


def publish_release(plan: ReleasePlan, records_uris: list[str], timings: dict | None = None) -> dict:
    """Write the release; return its summary. Raises `GateFailed` (release left incomplete)."""
    started = dt.datetime.now(dt.timezone.utc)
    parts = [read_parquet(uri) for uri in records_uris]
    records = pa.concat_tables(parts) if parts else RECORD_SCHEMA.empty_table()
    records = records.sort_by(ROW_INDEX)
    manifest = read_manifest(plan.job.manifest_uri)
    status = records.column("status")
    published = _with_passthrough(records.filter(pc.equal(status, "published")), PUBLISHED_COLUMNS, manifest)
    quarantined = _with_passthrough(records.filter(pc.equal(status, "quarantined")), QUARANTINE_COLUMNS, manifest)
    failures = release_failures(
        records, manifest.column("image_id").to_pylist(), plan.job.config.max_quarantine_fraction
    )

    release_uri = plan.release_uri
    write_parquet(join(release_uri, "manifest.parquet"), published)
    write_parquet(join(release_uri, "quarantine.parquet"), quarantined)
    seconds = records.column("seconds").to_pylist()
    summary = {
        "release_id": plan.release_id,
        "status": "failed" if failures else "published",
        "gate_failures": failures,
        "created_at": started.isoformat(),
        "counts": {
            "input": plan.input_rows,
            "published": published.num_rows,
            "quarantined": quarantined.num_rows,
            "flagged": sum(1 for f in published.column("flags").to_pylist() if f),
            "partitions": len(plan.partition_uris),
        },
        "quarantine_reasons": _reason_counts(quarantined),
        "input_manifest": {"uri": plan.job.manifest_uri, "sha256": plan.manifest_sha256, "rows": plan.input_rows},
        "config": plan.job.config.model_dump(mode="json"),
        "config_sha256": plan.job.config.digest(),
        "code_version": code_version(),
        "timings": {
            **(timings or {}),
            "image_seconds_median": statistics.median(seconds) if seconds else None,
            "image_seconds_max": max(seconds) if seconds else None,
        },
        "release_uri": release_uri,
    }
    if failures:
        write_bytes(join(release_uri, "release.json"), json.dumps(summary, indent=2).encode())
        raise GateFailed(release_uri, failures)

    summary["timings"]["publish_seconds"] = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
    write_bytes(join(release_uri, "release.json"), json.dumps(summary, indent=2).encode())
    write_bytes(join(release_uri, "_SUCCESS"), f"{dt.datetime.now(dt.timezone.utc).isoformat()}\n".encode())
    replace_atomically(join(plan.output_uri, "LATEST"), f"{plan.release_id}\n".encode())
    remove_tree(plan.job.work_uri)
    return summary
