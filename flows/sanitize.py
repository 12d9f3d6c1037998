"""The sanitize flow: manifest in, release out.

plan (read + check manifest, cut partitions) → one task per partition → publish (gate, release,
LATEST). Workers get partition URIs and write records files; only URIs cross the orchestrator.
"""

from __future__ import annotations

import os
import time

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.config import Config
from tasks.partition import process_partition
from tasks.plan import Job, ReleasePlan, plan_release
from tasks.publish import publish_release

# Work is keyed by release folder, not by Prefect's result cache (inputs hold a whole Config).
plan_task = task(plan_release, name="plan-release", cache_policy=NO_CACHE)
publish_task = task(publish_release, name="publish-release", cache_policy=NO_CACHE)


@task(name="process-partition", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def process_partition_task(partition_uri: str, job: Job) -> str:
    # Outputs are written under deterministic names, so a retry overwrites rather than duplicates.
    return process_partition(partition_uri, job)


@flow(name="sanitize", log_prints=True)
def sanitize(
    manifest: str,
    output: str,
    config: dict | None = None,
    release_id: str | None = None,
) -> dict:
    """Sanitize the images of `manifest` and publish a release under `output`."""
    settings = Config.model_validate(config or {})
    started = time.perf_counter()
    plan: ReleasePlan = plan_task(manifest, output, settings, release_id)
    planned = time.perf_counter()
    print(f"release {plan.release_id}: {plan.input_rows} rows in {len(plan.partition_uris)} partitions")
    futures = process_partition_task.map(plan.partition_uris, unmapped(plan.job))
    records_uris = [future.result() for future in futures]
    processed = time.perf_counter()
    timings = {"plan_seconds": planned - started, "process_seconds": processed - planned}
    summary = publish_task(plan, records_uris, timings)
    counts = summary["counts"]
    print(
        f"published {counts['published']}, quarantined {counts['quarantined']} of {counts['input']} rows "
        f"→ {summary['release_uri']}"
    )
    return summary


def sanitize_with_workers(workers: int):
    """The flow with a thread pool of `workers` partitions at a time (0 = one per core)."""
    return sanitize.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers or os.cpu_count() or 1))
