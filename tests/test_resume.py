"""Finished work is keyed by content: a crash costs nothing, a daily run computes only what is new."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import LENIENT_GATE, release_bytes, save
from skimage import data as photos

from flows.sanitize import sanitize

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "grass", "gravel", "brick"]


def dataset(folder, count: int) -> str:
    """`count` rows over real photos, each with an object box to remove."""
    rows = []
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        path = folder / "images" / f"{name}.png"
        if not path.exists():
            save(path, getattr(photos, name)())
        x = 40 + 17 * i
        rows.append({"image_id": f"row-{i:03d}", "image_uri": f"images/{name}.png",
                     "boxes": [[float(x), 60.0, float(x + 50), 110.0]], "caption": f"caption {i}"})
    path = folder / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.mark.usefixtures("prefect_harness")
def test_a_daily_run_computes_only_the_new_rows(tmp_path):
    data = tmp_path / "data"
    first = dataset(data, 6)
    summary = sanitize(manifest=first, output=str(tmp_path / "out"), config=LENIENT_GATE, release_id="day-1")
    assert summary["counts"]["computed"] == 6 and summary["counts"]["reused"] == 0
    second = dataset(data, 9)  # three uploads more
    summary = sanitize(manifest=second, output=str(tmp_path / "out"), config=LENIENT_GATE, release_id="day-2")
    assert summary["counts"]["computed"] == 3 and summary["counts"]["reused"] == 6
    day1 = pq.read_table(tmp_path / "out" / "releases" / "day-1" / "manifest.parquet").to_pylist()
    day2 = {r["image_id"]: r for r in pq.read_table(tmp_path / "out" / "releases" / "day-2" / "manifest.parquet").to_pylist()}
    for row in day1:  # reused rows are the same bytes with the same metrics
        assert day2[row["image_id"]] == row
        assert (tmp_path / "out" / "releases" / "day-1" / row["output_uri"]).read_bytes() == \
            (tmp_path / "out" / "releases" / "day-2" / row["output_uri"]).read_bytes()
    timings = pq.read_table(tmp_path / "out" / "releases" / "day-2" / "timings.parquet").to_pylist()
    assert sum(t["reused"] for t in timings) == 6


@pytest.mark.usefixtures("prefect_harness")
def test_a_settings_change_that_alters_pixels_recomputes(tmp_path):
    manifest = dataset(tmp_path / "data", 3)
    sanitize(manifest=manifest, output=str(tmp_path / "out"), config=LENIENT_GATE, release_id="a")
    gate_only = {"gate": {**LENIENT_GATE["gate"], "max_quarantine_fraction": 0.9}}  # no pixel changes: reuse
    assert sanitize(manifest=manifest, output=str(tmp_path / "out"), config=gate_only, release_id="b")["counts"]["reused"] == 3
    # The image suites pick the candidate a refused edit is written with: without retries, recomputed.
    no_retry = {"gate": {**LENIENT_GATE["gate"], "retry": False}}
    assert sanitize(manifest=manifest, output=str(tmp_path / "out"), config=no_retry, release_id="b2")["counts"]["computed"] == 3
    other_engine = {**LENIENT_GATE, "regrain": {"feather": 5.0}}
    summary = sanitize(manifest=manifest, output=str(tmp_path / "out"), config=other_engine, release_id="c")
    assert summary["counts"]["computed"] == 3


def _run(manifest, output, release_id, config):
    # Its own process group: a kill takes the run's embedded Prefect server down with it, as a
    # crashed machine would, instead of leaving it orphaned.
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", manifest, "--output", str(output), "--release-id", release_id,
         "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def test_kill_9_mid_run_then_rerun_gives_the_same_release(tmp_path):
    manifest = dataset(tmp_path / "data", 12)
    config = tmp_path / "config.yaml"
    import yaml

    # One row per partition, one at a time: slow and steady, easy to kill mid-way.
    config.write_text(yaml.safe_dump({"partition_size": 1, "workers": 1, **LENIENT_GATE}))

    reference = _run(manifest, tmp_path / "reference", "r", config)
    assert reference.wait(timeout=600) == 0, reference.stdout.read()[-3000:]

    crashed = tmp_path / "crashed"
    victim = _run(manifest, crashed, "r", config)
    deadline = time.time() + 300
    while time.time() < deadline:
        markers = list((crashed / ".cache").glob("*/*.json")) if (crashed / ".cache").exists() else []
        if len(markers) >= 4:
            break
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    done_before = len(list((crashed / ".cache").glob("*/*.json")))
    assert 4 <= done_before < 12, "the kill must land mid-run"
    assert not (crashed / "releases" / "r" / "_SUCCESS").exists() and not (crashed / "LATEST").exists()

    resumed = _run(manifest, crashed, "r", config)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output[-3000:]
    info = json.loads((crashed / "releases" / "r" / "release.json").read_text())
    assert info["counts"]["reused"] >= done_before and info["counts"]["computed"] <= 12 - done_before
    assert release_bytes(crashed, "r") == release_bytes(tmp_path / "reference", "r")
    assert (crashed / "LATEST").read_text().strip() == "r"
