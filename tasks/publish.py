"""Publish: turn a run's records into a versioned release, atomically.

Layout of `OUT/releases/<release_id>/`: `images/…`, `manifest.parquet` (published rows),
`quarantine.parquet` (every other row, with its reason), `quarantine/images/…` (edits the quality
suites refused, kept for review), `validation/*.json` (GX results), `report/index.html`,
`release.json`, and `_SUCCESS`, written last. `OUT/LATEST` is replaced only after `_SUCCESS`
exists, so a reader that follows `LATEST` never sees a half-written release, and only forward: a
run that started before the release LATEST names leaves it alone (`tasks/claims.py`).
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

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.manifest import CONTRACT_COLUMNS, ManifestError, load_manifest
from data_contracts.records import (
    METRIC_COLUMNS,
    PUBLISHED_COLUMNS,
    QUARANTINE_COLUMNS,
    RECORD_SCHEMA,
    RELEASE_MEDIANS,
    ROW_INDEX,
    TIMING_COLUMNS,
)
from tasks.claims import advance_latest
from tasks.export import write_training_views
from tasks.gate import GateFailed, gate_images, gate_release
from tasks.plan import ReleasePlan
from tasks.report import write_report
from tasks.uris import join, move, read_parquet, remove_tree, write_bytes, write_parquet

# manifest.parquet and quarantine.parquet are a function of the inputs, settings and code: a
# rerun, a resumed run and an incremental run write them byte for byte the same. Timings live apart.
QUARANTINE_DIR = "quarantine"


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


def _reason_counts(reasons: list[str]) -> dict[str, int]:
    # Count kinds of problem ("read: image not found"), not messages that differ by path or size.
    def kind(reason: str) -> str:
        stage, _, message = reason.partition(": ")
        return f"{stage}: {message.split(':', 1)[0]}"

    return dict(collections.Counter(kind(r) for r in reasons).most_common())


def _quarantine_failed_edits(rows: list[dict], failures: dict[str, list[str]], release_uri: str) -> None:
    """Rows the image suites refused leave `images/` for `quarantine/images/`, with their reason."""
    for row in rows:
        labels = failures.get(row["image_id"])
        if not labels:
            continue
        review = f"{QUARANTINE_DIR}/{row['output_uri']}"
        move(join(release_uri, row["output_uri"]), join(release_uri, review))
        row.update(status="quarantined", reason="quality: " + ", ".join(labels), review_uri=review)


def _release_frame(rows: list[dict]) -> pd.DataFrame:
    # The release suite's medians are over published rows: a refused smudge must not drag them.
    ratios = list(RELEASE_MEDIANS)
    frame = pd.DataFrame(rows, columns=["image_id", "status", "outside_changed", *ratios])
    frame.loc[frame["status"] != "published", ratios] = float("nan")
    return frame


def publish_release(plan: ReleasePlan, records_uris: list[str], timings: dict | None = None) -> dict:
    """Gate and write the release; return its summary. Raises `GateFailed` (release left incomplete)."""
    started = dt.datetime.now(dt.UTC)
    config = plan.job.config
    release_uri = plan.release_uri
    manifest, digest = load_manifest(plan.job.manifest_uri)
    if digest != plan.manifest_sha256:
        # Pass-through columns come from this read: they must be the rows that were processed.
        raise ManifestError(f"manifest {plan.job.manifest_uri} changed during the run (sha256 {digest[:12]}…, "
                            f"planned from {plan.manifest_sha256[:12]}…); nothing was published, run it again")
    parts = [read_parquet(uri) for uri in records_uris]
    rows = (pa.concat_tables(parts) if parts else RECORD_SCHEMA.empty_table()).sort_by(ROW_INDEX).to_pylist()
    for row in rows:
        row.setdefault("review_uri", None)

    frame = pd.DataFrame([{k: v for k, v in row.items() if k != "components"} for row in rows])
    image_outcomes = gate_images(frame, config) if rows else []
    _quarantine_failed_edits(rows, {k: v for o in image_outcomes for k, v in o.row_failures.items()}, release_uri)
    release_outcome = gate_release(_release_frame(rows), plan.input_rows, config)

    failures = [f"{o.suite}: {label}" for o in (*image_outcomes, release_outcome) for label in o.failed_expectations]
    for outcome in (*image_outcomes, release_outcome):
        result = json.dumps(outcome.result, indent=1, default=str).encode()
        write_bytes(join(release_uri, "validation", f"{outcome.suite}.json"), result)

    records = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    status = records.column("status")
    published = _with_passthrough(records.filter(pc.equal(status, "published")), list(PUBLISHED_COLUMNS), manifest)
    quarantined = _with_passthrough(records.filter(pc.equal(status, "quarantined")), list(QUARANTINE_COLUMNS), manifest)
    write_parquet(join(release_uri, "manifest.parquet"), published)
    write_parquet(join(release_uri, "quarantine.parquet"), quarantined)
    write_parquet(join(release_uri, "timings.parquet"), records.select(list(TIMING_COLUMNS)))
    reused = sum(1 for r in rows if r.get("reused"))

    seconds = records.column("seconds").to_pylist()
    summary = {
        "release_id": plan.release_id,
        "status": "failed" if failures else "published",
        "gate_failures": failures,
        "created_at": started.isoformat(),
        "run_started_at": plan.started_at,
        "counts": {
            "input": plan.input_rows,
            "published": published.num_rows,
            "quarantined": quarantined.num_rows,
            "flagged": sum(1 for f in published.column("flags").to_pylist() if f),
            "partitions": len(plan.partition_uris),
            "computed": sum(1 for r in rows if r.get("content_key") and not r.get("reused")),
            "reused": reused,
        },
        "quarantine_reasons": _reason_counts(quarantined.column("reason").to_pylist()),
        "metric_medians": {
            name: (float(pd.Series(published.column(name).to_pylist(), dtype=float).median())
                   if published.num_rows and published.column(name).null_count < published.num_rows else None)
            for name in METRIC_COLUMNS
        },
        "validation": {o.suite: {"success": o.success, "failed": o.failed_expectations}
                       for o in (*image_outcomes, release_outcome)},
        "input_manifest": {"uri": plan.job.manifest_uri, "sha256": plan.manifest_sha256, "rows": plan.input_rows},
        "config": config.model_dump(mode="json"),
        "config_sha256": config.digest(),
        "code_version": code_version(),
        "timings": {
            **(timings or {}),
            "image_seconds_median": statistics.median(seconds) if seconds else None,
            "image_seconds_max": max(seconds) if seconds else None,
        },
        "release_uri": release_uri,
    }
    summary["report"] = write_report(release_uri, published, quarantined, manifest, plan.job, summary)
    summary["timings"]["publish_seconds"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
    if not failures:  # before release.json says "published": a view that cannot be written fails the run first
        write_training_views(release_uri, plan.release_id, published, config.output)
    write_bytes(join(release_uri, "release.json"), json.dumps(summary, indent=2).encode())
    if failures:
        raise GateFailed(release_uri, failures, summary)
    write_bytes(join(release_uri, "_SUCCESS"), f"{dt.datetime.now(dt.UTC).isoformat()}\n".encode())
    summary["latest"] = advance_latest(plan.output_uri, plan.release_id, plan.started_at)
    remove_tree(plan.job.work_uri)
    return summary
