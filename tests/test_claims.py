"""Concurrent runs on one store: a release id is held by one run, LATEST only moves forward."""

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.claims import (
    LEASE_SECONDS,
    ReleaseTaken,
    advance_latest,
    advance_pointer,
    claim_release,
    claim_uri,
    keep_claim,
    release_claim,
    renew_claim,
)


def published(output, release_id: str, run_started_at: str) -> None:
    release = output / "releases" / release_id
    release.mkdir(parents=True)
    (release / "release.json").write_text(json.dumps({"release_id": release_id, "run_started_at": run_started_at}))


def test_latest_moves_only_forward(tmp_path):
    published(tmp_path, "monday", "2026-11-30T02:00:00+00:00")
    published(tmp_path, "tuesday", "2026-12-01T02:00:00+00:00")
    assert advance_latest(str(tmp_path), "tuesday", "2026-12-01T02:00:00+00:00")
    # Monday's run was slower and finishes last: LATEST stays at Tuesday.
    assert not advance_latest(str(tmp_path), "monday", "2026-11-30T02:00:00+00:00")
    assert (tmp_path / "LATEST").read_text() == "tuesday\n"


def test_any_pointer_moves_only_forward(tmp_path):
    published(tmp_path, "monday", "2026-11-30T02:00:00+00:00")
    published(tmp_path, "tuesday", "2026-12-01T02:00:00+00:00")
    pointer = str(tmp_path / "VALIDATED")
    assert advance_pointer(pointer, str(tmp_path), "tuesday", "2026-12-01T02:00:00+00:00")
    assert not advance_pointer(pointer, str(tmp_path), "monday", "2026-11-30T02:00:00+00:00")
    assert (tmp_path / "VALIDATED").read_text() == "tuesday\n"


def test_racing_runs_leave_latest_at_the_newest(tmp_path):
    starts = {f"run-{k:02d}": f"2026-11-30T02:{k:02d}:00+00:00" for k in range(12)}
    for release_id, started in starts.items():
        published(tmp_path, release_id, started)
    threads = [threading.Thread(target=advance_latest, args=(str(tmp_path), release_id, started))
               for release_id, started in reversed(starts.items())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (tmp_path / "LATEST").read_text() == "run-11\n"


def test_a_release_id_is_held_by_one_run_at_a_time(tmp_path):
    first = claim_release(str(tmp_path), "r1")
    with pytest.raises(ReleaseTaken, match=r"release id 'r1' is being written by another run \(pid \d+"):
        claim_release(str(tmp_path), "r1")
    other = claim_release(str(tmp_path), "r2")  # other ids are free
    release_claim(first)
    again = claim_release(str(tmp_path), "r1")
    assert again.token != first.token
    release_claim(first)  # no longer the holder: a stale release gives nothing back
    assert json.loads(Path(claim_uri(str(tmp_path), "r1")).read_text())["token"] == again.token
    release_claim(again)
    release_claim(other)
    assert not (tmp_path / ".claims" / "r1.json").exists()


def test_a_claim_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    uri = claim_uri(str(tmp_path), "r")
    (tmp_path / ".claims").mkdir()
    with open(uri, "w") as f:
        json.dump({"token": "old", "host": socket.gethostname(), "pid": int(dead.stdout), "claimed_at": "x"}, f)
    claim = claim_release(str(tmp_path), "r")
    assert json.loads(Path(uri).read_text())["token"] == claim.token
    release_claim(claim)

    # A claim from another host cannot be proven dead while its run renews it: refused, naming
    # the lease and the file; once the lease has run out, taken over.
    fresh = dt.datetime.now(dt.UTC).isoformat()
    with open(uri, "w") as f:
        json.dump({"token": "far", "host": "another-host", "pid": 1, "claimed_at": fresh, "renewed_at": fresh}, f)
    with pytest.raises(ReleaseTaken, match=rf"wait {LEASE_SECONDS} s after its last renewal .* or delete .*r\.json"):
        claim_release(str(tmp_path), "r")
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LEASE_SECONDS + 5)).isoformat()
    with open(uri, "w") as f:
        json.dump({"token": "far", "host": "another-host", "pid": 1, "claimed_at": stale, "renewed_at": stale}, f)
    release_claim(claim_release(str(tmp_path), "r"))


def test_a_running_run_keeps_its_claim_fresh_until_another_takes_it(tmp_path):
    claim = claim_release(str(tmp_path), "r")
    first = json.loads(Path(claim.uri).read_text())
    assert first["pid"] == os.getpid() and first["pid_started"] and first["renewed_at"] == first["claimed_at"]
    with keep_claim(claim, every=0.02):
        time.sleep(0.3)
    renewed = json.loads(Path(claim.uri).read_text())
    assert renewed["token"] == claim.token and renewed["renewed_at"] > first["renewed_at"]
    Path(claim.uri).write_text(json.dumps({**renewed, "token": "someone-else"}))
    assert not renew_claim(claim)  # taken over: this run no longer renews it
    assert json.loads(Path(claim.uri).read_text())["token"] == "someone-else"
    release_claim(claim)


def test_a_leftover_claim_naming_this_very_process_is_taken_over(tmp_path):
    """A container restarted with a fixed hostname can give the new run the old run's pid."""
    uri = claim_uri(str(tmp_path), "r")
    (tmp_path / ".claims").mkdir()
    Path(uri).write_text(json.dumps({"token": "old", "host": socket.gethostname(), "pid": os.getpid()}))
    claim = claim_release(str(tmp_path), "r")
    assert json.loads(Path(uri).read_text())["token"] == claim.token
    release_claim(claim)
    # The same pid with another start time is another process: the holder is gone.
    Path(uri).write_text(json.dumps({"token": "old", "host": socket.gethostname(), "pid": os.getppid(),
                                     "pid_started": "1"}))
    release_claim(claim_release(str(tmp_path), "r"))
