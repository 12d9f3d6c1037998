"""Release events on a real Prefect server, and the downstream deployment they trigger.

`clean-clarify run` publishes one release and has the gate refuse another, against a
`prefect server start` on loopback where deployments/prefect.yaml is deployed and a worker runs;
the server's event feed must hold both events, and the published one must start
`validate-release/on-publish`, which validates the release and moves OUT/VALIDATED.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from helpers import LENIENT_GATE, save
from prefect_processes import REPO, get_json, prefect_worker, run_prefect, wait_for_flow_run

from flows.downstream import default_pointer
from flows.events import FAILED, PUBLISHED, release_event

POOL, DOWNSTREAM = "clean-clarify", "validate-release/on-publish"


def _summary(status: str) -> dict:
    return {
        "release_id": "r-7", "release_uri": "s3://bucket/out/releases/r-7", "status": status,
        "counts": {"input": 4, "published": 3, "quarantined": 1},
        "gate_failures": [] if status == "published" else ["release: expect_column_values_to_be_in_set(status)"],
        "validation": {"release": {"success": status == "published", "failed": []}},
        "quarantine_reasons": {"read: image not found": 1},
        "metric_medians": {"texture_ratio": 1.0},  # not in the event: the release.json has it
    }


def test_the_event_names_the_release_and_carries_the_outcome():
    published = release_event(_summary("published"))
    assert published["event"] == PUBLISHED == "clean-clarify.release.published"
    assert published["resource"] == {
        "prefect.resource.id": "clean-clarify.release.r-7",
        "prefect.resource.name": "r-7",
        "clean-clarify.release.uri": "s3://bucket/out/releases/r-7",
        "clean-clarify.release.status": "published",
    }
    payload = published["payload"]
    assert payload["counts"] == {"input": 4, "published": 3, "quarantined": 1}
    assert payload["quarantine_reasons"] == {"read: image not found": 1} and payload["gate_failures"] == []
    assert payload["release_uri"] == "s3://bucket/out/releases/r-7" and "metric_medians" not in payload

    failed = release_event(_summary("failed"))
    assert failed["event"] == FAILED == "clean-clarify.release.failed"
    assert failed["payload"]["gate_failures"] == ["release: expect_column_values_to_be_in_set(status)"]


def test_the_trigger_in_prefect_yaml_matches_the_event_names():
    deployments = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())["deployments"]
    (downstream,) = [d for d in deployments if d["name"] == "on-publish"]
    (trigger,) = downstream["triggers"]
    assert trigger["expect"] == [PUBLISHED]
    assert trigger["match"] == {"prefect.resource.id": "clean-clarify.release.*"}


def _events(api: str, name: str) -> list[dict]:
    page = get_json(f"{api}/events/filter", {"filter": {"event": {"name": [name]}}, "limit": 50})
    return page["events"]


def _wait_for(what: str, seconds: float, probe):
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(1)


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_published_and_failed_events_reach_the_server_and_the_trigger_runs_downstream(prefect_server, tmp_path):
    api, env = prefect_server
    from skimage import data as photos

    save(tmp_path / "in" / "camera.png", photos.camera())
    good, bad = tmp_path / "in" / "good.parquet", tmp_path / "in" / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"image_id": "camera", "image_uri": "camera.png"}]), good)
    pq.write_table(pa.Table.from_pylist([{"image_id": "camera", "image_uri": "camera.png"},
                                         {"image_id": "gone", "image_uri": "gone.png"}]), bad)
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(yaml.safe_dump({**LENIENT_GATE, "device": "cpu"}))
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"device": "cpu"}))  # 1 row in 2 quarantined: over the default 20 %
    output = tmp_path / "release-store"

    run_prefect(env, "work-pool", "create", POOL, "--type", "process")
    deploy_env = {**env, "CLEAN_CLARIFY_MANIFEST": str(good), "CLEAN_CLARIFY_OUTPUT": str(output)}
    run_prefect(deploy_env, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml", timeout=180)
    downstream = get_json(f"{api}/deployments/name/{DOWNSTREAM}")

    with prefect_worker(env, POOL, tmp_path) as (worker, worker_log):
        done = _cli(env, "run", str(good), "--output", str(output), "--config", str(lenient), "--release-id", "ev-1")
        assert done.returncode == 0, done.stderr[-3000:]
        done = _cli(env, "run", str(bad), "--output", str(output), "--config", str(strict), "--release-id", "ev-bad")
        assert done.returncode == 1, done.stderr[-3000:]

        # (a) Both events are in the server's event feed, naming the release and carrying the outcome.
        (published,) = _wait_for("published event", 60, lambda: _events(api, PUBLISHED))
        release_uri = str(output / "releases" / "ev-1")
        assert published["resource"]["prefect.resource.id"] == "clean-clarify.release.ev-1"
        assert published["resource"]["clean-clarify.release.uri"] == release_uri
        assert published["payload"]["counts"]["published"] == 1 and published["payload"]["status"] == "published"
        assert published["payload"]["gate_failures"] == [] and published["payload"]["quarantine_reasons"] == {}
        # Emitted inside the flow run: Prefect names the run as a related resource.
        assert any(r["prefect.resource.id"].startswith("prefect.flow-run.") for r in published["related"])

        (failed,) = _wait_for("failed event", 60, lambda: _events(api, FAILED))
        assert failed["resource"]["prefect.resource.id"] == "clean-clarify.release.ev-bad"
        assert failed["payload"]["status"] == "failed"
        counts = failed["payload"]["counts"]
        assert (counts["input"], counts["published"], counts["quarantined"]) == (2, 1, 1)
        assert failed["payload"]["quarantine_reasons"] == {"read: image not found": 1}
        assert any("expect_column_values_to_be_in_set(status)" in f for f in failed["payload"]["gate_failures"])

        # (b) The trigger started one run of the downstream deployment, for the published release only.
        def downstream_runs():
            return get_json(f"{api}/flow_runs/filter", {"deployments": {"id": {"any_": [downstream["id"]]}}})

        (run,) = _wait_for("downstream flow run", 60, downstream_runs)
        assert run["parameters"] == {"release_uri": release_uri, "release_id": "ev-1"}
        state = wait_for_flow_run(api, run["id"], worker, worker_log, seconds=120)

    assert state["type"] == "COMPLETED", f"{state['type']}: {state.get('message')}\n{worker_log.read_text()[-6000:]}"
    assert default_pointer(release_uri) == str(output / "VALIDATED")
    assert (output / "VALIDATED").read_text() == "ev-1\n"
    assert len(downstream_runs()) == 1  # the failed event started nothing
