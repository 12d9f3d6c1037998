"""Manifest → partitions: read and check the manifest, then cut it into the units of work.

Each partition is written as a small Parquet file in the run's work folder, and its URI is what a
worker receives: arrays and row lists never travel through the orchestrator.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.manifest import CONTRACT_COLUMNS, load_manifest
from data_contracts.records import ROW_INDEX
from tasks.claims import Claim, ReleaseTaken, claim_release, release_claim
from tasks.config import Config
from tasks.uris import exists, has_protocol, join, parent_of, remove_tree, write_parquet

# A release id names a folder and is the whole content of LATEST: one line, no path, no dot-file.
RELEASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RunRefused(ValueError):
    """The run cannot start as asked (a bad or taken release id, an output that cannot hold a
    store); nothing was written."""


def check_release_id(release_id: str) -> str:
    if not isinstance(release_id, str) or not RELEASE_ID_PATTERN.fullmatch(release_id):
        raise RunRefused(
            f"release id {release_id!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return release_id


def check_output(output_uri: str) -> None:
    """A local output must be a folder or creatable as one: no file in its path."""
    if has_protocol(output_uri):
        return
    path = os.path.abspath(output_uri)
    while True:
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise RunRefused(f"output {output_uri!r} cannot be a release store: {path} is a file, not a folder")
            return
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


@dataclass(frozen=True)
class Job:
    """Everything a partition worker needs: small, picklable, the same for every partition."""

    manifest_uri: str
    manifest_root: str
    release_uri: str
    work_uri: str
    config: Config
    cache_uri: str | None = None  # content-keyed finished work; None = always compute


@dataclass(frozen=True)
class ReleasePlan:
    release_id: str
    output_uri: str
    job: Job
    partition_uris: list[str]
    partition_labels: list[str]
    input_rows: int
    manifest_sha256: str
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    claim: Claim | None = None  # this run's hold on release_id; given back when the run ends

    @property
    def release_uri(self) -> str:
        return self.job.release_uri


def normalise_uri(uri: str) -> str:
    return uri if has_protocol(uri) else os.path.abspath(uri)


def release_uri_for(output_uri: str, release_id: str) -> str:
    return join(output_uri, "releases", release_id)


def default_release_id(manifest_digest: str, config: Config) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{manifest_digest[:6]}{config.digest()[:4]}"


def partition_bounds(rows: int, partition_size: int, workers: int = 1) -> list[tuple[int, int]]:
    """`[start, stop)` row ranges that keep every worker busy from the first second.

    At most `partition_size` rows each, at least `workers` partitions (while there are rows for
    them), and a multiple of `workers` partitions where there are rows enough: no worker idles while
    another works through a partition of its own at the end. Sizes differ by one row at most.
    """
    if rows <= 0:
        return []
    workers = max(1, workers)
    count = max(-(-rows // partition_size), min(workers, rows))
    count = min(rows, -(-count // workers) * workers)
    size, extra = divmod(rows, count)
    bounds, start = [], 0
    for number in range(count):
        stop = start + size + (number < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def split_partitions(table: pa.Table, partition_size: int, workers: int = 1) -> list[tuple[str, pa.Table]]:
    """By the `partition` column when present (nulls form their own partition), else by row count
    (`partition_bounds`: every one of `workers` gets a partition, whatever the table's size)."""
    if "partition" in table.column_names:
        labels = table.column("partition")
        groups: list[tuple[str, pa.Table]] = []
        for value in pc.unique(labels).to_pylist():
            selector = pc.is_null(labels) if value is None else pc.equal(labels, value)
            groups.append(("(none)" if value is None else value, table.filter(selector)))
        return groups
    return [(f"rows {start}-{stop - 1}", table.slice(start, stop - start))
            for start, stop in partition_bounds(table.num_rows, partition_size, workers)]


def default_workers(config: Config) -> int:
    """Partitions that run at once when the runner does not say: `workers`, else one per core."""
    return config.workers or os.cpu_count() or 1


def plan_release(manifest_uri: str, output_uri: str, config: Config, release_id: str | None = None,
                 workers: int | None = None) -> ReleasePlan:
    """Check the manifest, claim the release id and cut the partitions; `workers`: how many
    partitions the runner works on at once (default `default_workers`), so that each gets one."""
    started_at = dt.datetime.now(dt.UTC).isoformat()
    manifest_uri, output_uri = normalise_uri(manifest_uri), normalise_uri(output_uri)
    check_output(output_uri)
    table, digest = load_manifest(manifest_uri)
    release_id = check_release_id(release_id or default_release_id(digest, config))
    try:
        claim = claim_release(output_uri, release_id)
    except ReleaseTaken as exc:
        raise RunRefused(str(exc)) from None
    try:
        return _plan_claimed(table, digest, manifest_uri, output_uri, config, release_id, started_at, claim,
                             workers or default_workers(config))
    except BaseException:
        release_claim(claim)
        raise


def _plan_claimed(table, digest: str, manifest_uri: str, output_uri: str, config: Config, release_id: str,
                  started_at: str, claim: Claim, workers: int) -> ReleasePlan:
    release_uri = release_uri_for(output_uri, release_id)
    if exists(join(release_uri, "_SUCCESS")):
        raise RunRefused(f"release {release_id!r} is already published at {release_uri}; choose another --release-id")
    # An earlier attempt at this id never completed: start it clean rather than mix outputs.
    remove_tree(release_uri)
    work_uri = join(output_uri, ".work", release_id)
    remove_tree(work_uri)

    indexed = table.append_column(ROW_INDEX, pa.array(range(table.num_rows), pa.int64()))
    keep = [c for c in indexed.column_names if c in CONTRACT_COLUMNS or c == ROW_INDEX]
    partitions = split_partitions(indexed.select(keep), config.partition_size, workers)
    uris, labels = [], []
    for number, (label, part) in enumerate(partitions):
        uri = join(work_uri, "partitions", f"part-{number:05d}.parquet")
        write_parquet(uri, part)
        uris.append(uri)
        labels.append(label)
    job = Job(manifest_uri, parent_of(manifest_uri), release_uri, work_uri, config, join(output_uri, ".cache"))
    return ReleasePlan(release_id, output_uri, job, uris, labels, table.num_rows, digest, started_at, claim)
