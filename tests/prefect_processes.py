"""A real `prefect server start` on 127.0.0.1, the Prefect CLI and a process worker, as a user runs
them: subprocesses of this virtualenv's `prefect`, each stopped (with its children) when done, also
when a test fails. The `prefect_server` fixture (conftest.py) is
the server; tests/test_deployment.py and tests/test_events.py drive the rest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, payload: dict | None = None):
    """GET `url`, or POST `payload` as JSON; the decoded answer."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def stop(process: subprocess.Popen) -> None:
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


@contextlib.contextmanager
def running_prefect_server(folder: Path):
    """A `prefect server start` of its own under `folder`; yields (api_url, env for the Prefect CLI)."""
    home = folder / "prefect-home"
    home.mkdir()
    port = free_port()
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
    log_path = folder / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it until `finally` closes it
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
            with contextlib.suppress(OSError, ValueError):
                if get_json(f"{api}/health") is True:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after 120 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield api, {**env, "PREFECT_API_URL": api}
    finally:
        stop(server)
        log.close()


def run_prefect(env: dict, *args: str, timeout: float = 120) -> str:
    """`prefect ARGS` from the repository root; its stdout, or the test fails with its output."""
    done = subprocess.run([PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{output}"
    return done.stdout


@contextlib.contextmanager
def prefect_worker(env: dict, pool: str, folder: Path):
    """`prefect worker start --pool POOL`, run from `folder` (not the checkout: the deployments' pull
    step must bring each run there); yields (process, log path)."""
    log_path = folder / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--name", "test-worker"],
            cwd=folder, env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield worker, log_path
        finally:
            stop(worker)


def wait_for_flow_run(api: str, flow_run_id: str, worker: subprocess.Popen, worker_log: Path, seconds: float) -> dict:
    """Poll the flow run until it reaches a final state; its final state."""
    deadline = time.monotonic() + seconds
    while True:
        state = get_json(f"{api}/flow_runs/{flow_run_id}")["state"]
        if state and state["type"] in FINAL_STATES:
            return state
        assert worker.poll() is None, f"the worker exited:\n{worker_log.read_text()[-6000:]}"
        assert time.monotonic() < deadline, f"flow run still {state and state['type']}:\n{worker_log.read_text()[-6000:]}"
        time.sleep(2)
