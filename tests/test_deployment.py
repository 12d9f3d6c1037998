"""deployments/prefect.yaml on a real Prefect server: deploy, a process worker, a run, a release.

Everything a user types is typed here, as subprocesses of this virtualenv's `prefect`: a server on
127.0.0.1 with its own PREFECT_HOME and SQLite database, `prefect work-pool create`,
`prefect deploy --all`, `prefect worker start`, `prefect deployment run`. Every process started
is stopped, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
PREFECT_FILE = "deployments/prefect.yaml"
POOL, DEPLOYMENT = "clean-clarify", "sanitize/daily"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, payload: dict | None = None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group (the server and worker start children), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def prefect_server(tmp_path):
    """A `prefect server start` of its own; yields (api_url, env for the Prefect CLI)."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    port = _free_port()
    # Nothing from the developer's own Prefect profile or deployment settings leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLEAN_CLARIFY_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited with {server.returncode}:\n{(tmp_path / 'server.log').read_text()[-4000:]}")
            with contextlib.suppress(OSError, ValueError):
                if _get_json(f"{api}/health") is True:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after 120 s:\n{(tmp_path / 'server.log').read_text()[-4000:]}")
            time.sleep(0.5)
        yield api, {**env, "PREFECT_API_URL": api}
    finally:
        _stop(server)
        log.close()


def _prefect(env: dict, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_deploy_a_worker_runs_it_and_the_release_is_published(prefect_server, demo_manifest, tmp_path):
    api, env = prefect_server
    output = tmp_path / "release-store"
    _prefect(env, "work-pool", "create", POOL, "--type", "process")

    # The deployment's default parameters come from the environment of `prefect deploy`.
    deploy_env = {**env, "CLEAN_CLARIFY_MANIFEST": demo_manifest, "CLEAN_CLARIFY_OUTPUT": str(output)}
    _prefect(deploy_env, "--no-prompt", "deploy", "--all", "--prefect-file", PREFECT_FILE, timeout=180)
    deployment = _get_json(f"{api}/deployments/name/{DEPLOYMENT}")
    assert deployment["parameters"]["manifest"] == demo_manifest
    assert deployment["parameters"]["output"] == str(output)
    assert deployment["parameters"]["release_id"] is None
    assert deployment["work_pool_name"] == POOL and "gpu" in deployment["tags"]
    # No code is pushed: the pull step sends the worker's runs to the checkout deployed from.
    [pull_step] = deployment["pull_steps"]
    directory = pull_step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert os.path.realpath(directory) == str(REPO)
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"

    ran = _prefect(env, "deployment", "run", DEPLOYMENT, "--param", f"manifest={demo_manifest}",
                   "--param", f"output={output}", "--param", "release_id=deployed-1")
    flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", ran).group(1)

    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", POOL, "--name", "test-worker"],
            # The worker runs from elsewhere: the pull step must bring the run to the checkout.
            cwd=tmp_path, env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while True:
                state = _get_json(f"{api}/flow_runs/{flow_run_id}")["state"]
                if state and state["type"] in FINAL_STATES:
                    break
                assert worker.poll() is None, f"the worker exited:\n{worker_log.read_text()[-6000:]}"
                assert time.monotonic() < deadline, f"flow run still {state and state['type']}:\n{worker_log.read_text()[-6000:]}"
                time.sleep(2)
        finally:
            _stop(worker)

    assert state["type"] == "COMPLETED", f"{state['type']}: {state.get('message')}\n{worker_log.read_text()[-6000:]}"
    assert (output / "LATEST").read_text().strip() == "deployed-1"
    release = output / "releases" / "deployed-1"
    assert (release / "_SUCCESS").exists()
    info = json.loads((release / "release.json").read_text())
    assert info["counts"]["published"] + info["counts"]["quarantined"] == info["counts"]["input"] == 8
