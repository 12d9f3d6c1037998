"""Scale-out and memory: Dask speed-up from 1 to 2 workers, orchestration overhead, peak RSS.

1. Speed-up: ROWS rows (real photos that scikit-image ships, each with an object box to remove)
   run on a local dask.distributed cluster of 1, then 2 worker processes (1 thread each), cache
   off. `overhead` = 1 - (summed per-image compute seconds) / (wall seconds x workers): the share
   of worker time spent on anything but editing images (Prefect, Dask, Parquet, publishing).
2. Memory: the flow on 100, 1,000 and 10,000 rows (no edit: the work per row is read, hash,
   write), each in a fresh process; peak RSS of that process and its children.

    .venv/bin/python benchmarks/scale_benchmark.py [--rows 1000] [--memory 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "grass", "gravel", "brick"]


def dataset(folder: Path, rows: int, edit: bool) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image
    from skimage import data

    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / "images" / f"{name}.png")
    table = []
    for i in range(rows):
        x = 30 + (i * 37) % 380
        table.append({
            "image_id": f"row-{i:05d}", "image_uri": f"images/{PHOTOS[i % len(PHOTOS)]}.png",
            "boxes": [[float(x), 80.0, float(x + 60), 150.0]] if edit else None,
        })
    pq.write_table(pa.Table.from_pylist(table), folder / "manifest.parquet")
    return str(folder / "manifest.parquet")


def run_on_cluster(manifest: str, workers: int, output: Path) -> tuple[float, float]:
    """(wall seconds, summed per-image seconds) of one run on a fresh local cluster."""
    import pyarrow.parquet as pq
    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from flows.sanitize import sanitize, task_runner

    config = {"partition_size": 25, "workers": 0, "gate": {"max_quarantine_fraction": 1.0},
              "report_worst": 0}
    with prefect_test_harness(server_startup_timeout=90), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            started = time.perf_counter()
            summary = sanitize.with_options(task_runner=task_runner("dask", dask_address=cluster.scheduler_address))(
                manifest=manifest, output=str(output), config=config, release_id="bench")
            wall = time.perf_counter() - started
    timings = pq.read_table(Path(summary["release_uri"]) / "timings.parquet")
    return wall, float(sum(timings.column("seconds").to_pylist()))


def memory_child(rows: int) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.sanitize import sanitize

    with tempfile.TemporaryDirectory() as tmp:
        manifest = dataset(Path(tmp) / "data", rows, edit=False)
        with prefect_test_harness(server_startup_timeout=90):
            sanitize(manifest=manifest, output=str(Path(tmp) / "out"),
                     config={"partition_size": 250, "workers": 2, "report_worst": 0}, release_id="m")
    usage = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"rows": rows, "peak_rss_mb": usage / 1024}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--memory", default="100,1000,10000")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0

    lines = []
    if args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = dataset(Path(tmp) / "data", args.rows, edit=True)
            results = {w: run_on_cluster(manifest, w, Path(tmp) / f"out-{w}") for w in (1, 2)}
        (wall1, work1), (wall2, work2) = results[1], results[2]
        lines += [
            f"{args.rows} images, partitions of 25, local dask cluster, 1 thread per worker process\n",
            "| workers | wall s | images/s | speed-up | overhead |", "|---|---|---|---|---|",
            f"| 1 | {wall1:.1f} | {args.rows / wall1:.2f} | 1.00x | {1 - work1 / wall1:.1%} |",
            f"| 2 | {wall2:.1f} | {args.rows / wall2:.2f} | {wall1 / wall2:.2f}x | {1 - work2 / (2 * wall2):.1%} |",
        ]
    if args.memory:
        lines += ["\n| rows | peak RSS (MB) |", "|---|---|"]
        for rows in (int(r) for r in args.memory.split(",")):
            done = subprocess.run([sys.executable, __file__, "--memory-child", str(rows)], capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            lines.append(f"| {rows} | {result['peak_rss_mb']:.0f} |")
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / "scale.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
