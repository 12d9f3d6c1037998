"""The sanitize flow: manifest in, release out.

plan (read + check manifest, cut partitions) → one task per partition → publish (gate, release,
LATEST). Workers get partition URIs and write records files; only URIs cross the orchestrator.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.events import emit_release_event
from flows.progress import RunProgress, publish_artifacts
from tasks.claims import LEASE_SECONDS, keep_claim, release_claim, renew_claim
from tasks.config import Config
from tasks.device import pick_device
from tasks.gate import GateFailed
from tasks.partition import load_engines, process_partition
from tasks.plan import Job, ReleasePlan, RunRefused, plan_release
from tasks.publish import publish_release

# Finished work is keyed by content in the output store (tasks/cache.py), not by Prefect's result
# cache, whose keys would hash a whole Config per call.
plan_task = task(plan_release, name="plan-release", cache_policy=NO_CACHE)
publish_task = task(publish_release, name="publish-release", cache_policy=NO_CACHE)


@task(name="process-partition", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def process_partition_task(partition_uri: str, job: Job) -> str:
    # Outputs go to deterministic names and finished rows are reused, so a retry after a
    # transient storage error overwrites rather than duplicates, and redoes only what is missing.
    return process_partition(partition_uri, job)


def _gpu_annotation(config: Config):
    """On a Dask cluster, partition tasks that will use CUDA ask for a `GPU` worker resource."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        return contextlib.nullcontext()
    if not isinstance(get_run_context().task_runner, DaskTaskRunner) or pick_device(config.device).type != "cuda":
        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources={"GPU": 1})


def _runner_workers(config: Config) -> int | None:
    """How many partitions this run's task runner works on at once: the thread pool's size, or the
    Dask cluster's threads; `workers` in the config caps both. None when it cannot tell."""
    runner = get_run_context().task_runner
    count = None
    # Prefect 3 keeps the pool's size in `_max_workers` and offers no public accessor; an unset pool
    # (sys.maxsize) cannot say.
    if isinstance(runner, ThreadPoolTaskRunner) and getattr(runner, "_max_workers", sys.maxsize) < sys.maxsize:
        count = runner._max_workers
    else:
        with contextlib.suppress(Exception):  # a cluster that cannot say: the default
            from prefect_dask import DaskTaskRunner

            if isinstance(runner, DaskTaskRunner):
                count = sum(runner.client.nthreads().values()) or None
    if config.workers:
        count = min(count or config.workers, config.workers)
    return count


def _process_partitions(plan: ReleasePlan, settings: Config, progress: RunProgress) -> list[str]:
    """One task per partition, at most `settings.workers` at a time (0 = all at once); returns the
    records URIs in partition order, whatever order the tasks finished in."""
    runner_task = process_partition_task
    if pick_device(settings.device).type == "cuda":
        # `prefect concurrency-limit create gpu N` then bounds the partitions sharing the GPUs.
        runner_task = process_partition_task.with_options(tags=["gpu"])
    limit = settings.workers or len(plan.partition_uris) or 1
    waiting = list(enumerate(plan.partition_uris))
    running: dict = {}
    done: dict[int, str] = {}
    with _gpu_annotation(settings):
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    index, uri = waiting.pop(0)
                    running[runner_task.submit(uri, plan.job)] = index
                finished = next(iter(as_completed(list(running))))
                done[running.pop(finished)] = finished.result()
                progress.advance()
        except BaseException:
            # A failed run gives its release id back only once nothing of it still writes there:
            # a rerun of the id would clear the folder under tasks still running.
            for future in running:
                future.wait()
            raise
    return [done[i] for i in range(len(plan.partition_uris))]


def _process_and_publish(plan: ReleasePlan, settings: Config, started: float) -> dict:
    planned = time.perf_counter()
    print(f"release {plan.release_id}: {plan.input_rows} rows in {len(plan.partition_uris)} partitions")
    progress = RunProgress(plan.release_id, len(plan.partition_uris))
    records_uris = _process_partitions(plan, settings, progress)
    progress.close()
    processed = time.perf_counter()

    timings = {"plan_seconds": planned - started, "process_seconds": processed - planned}
    if plan.claim is not None and not renew_claim(plan.claim):
        raise RunRefused(f"release {plan.release_id!r} was claimed by another run while this one worked "
                         f"(its claim had not been renewed for {LEASE_SECONDS} s); nothing was published")
    try:
        summary = publish_task(plan, records_uris, timings)
    except GateFailed as failed:
        if failed.summary:
            publish_artifacts(failed.summary)  # the UI shows why nothing was published
            emit_release_event(failed.summary)
        raise
    publish_artifacts(summary)
    emit_release_event(summary)  # after LATEST moved: whoever reacts finds the release complete
    return summary


@flow(name="sanitize", log_prints=True)
def sanitize(
    manifest: str,
    output: str,
    config: dict | None = None,
    release_id: str | None = None,
) -> dict:
    """Sanitize the images of `manifest` and publish a release under `output`."""
    settings = Config.model_validate(config or {})
    # Weights named in the config load here first: a wrong URL or hash fails the run at once.
    load_engines(settings)
    started = time.perf_counter()
    # Partitions are cut so that every worker of the runner has one from the first second.
    plan: ReleasePlan = plan_task(manifest, output, settings, release_id, _runner_workers(settings))
    try:  # the plan holds the release id for this run until it ends, however it ends
        with keep_claim(plan.claim):
            summary = _process_and_publish(plan, settings, started)
    finally:
        release_claim(plan.claim)
    counts = summary["counts"]
    print(
        f"published {counts['published']}, quarantined {counts['quarantined']} of {counts['input']} rows "
        f"({counts['computed']} computed, {counts['reused']} reused) → {summary['release_uri']}"
    )
    return summary


def task_runner(runner: str = "threads", workers: int = 0, dask_address: str | None = None):
    """`threads`: partitions on a thread pool in this process (engines release the GIL).
    `dask`: on an existing dask.distributed cluster at `dask_address`, or a local one."""
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or os.cpu_count() or 1, "threads_per_worker": 1})
    if runner != "threads":
        raise ValueError(f"unknown runner {runner!r}: use threads or dask")
    return ThreadPoolTaskRunner(max_workers=workers or os.cpu_count() or 1)
