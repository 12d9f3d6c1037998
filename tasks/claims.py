"""Concurrent runs against one release store: who may write a release id, and where LATEST points.

A run claims its release id before it touches the release folder (`OUT/.claims/<id>.json`,
created only if absent), so two runs never write one release; it renews the claim while it runs
(`keep_claim`) and gives it back when it ends. A claim left by a killed run is taken over: on the
same host once its process is gone, from any host once it has not been renewed for LEASE_SECONDS.

`LATEST` moves only forward: a release replaces the one it names only if its run started later
(ties broken by id), through a compare-and-swap, so an older run that finishes last cannot move
it back. Both rest on `tasks.uris.replace_if_unchanged`: a lock file locally, conditional PUTs on S3.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from tasks.uris import RowError, Versioned, join, read_bytes, read_versioned, remove, replace_if_unchanged

log = logging.getLogger(__name__)

_ATTEMPTS = 5  # compare-and-swap rounds before giving up on a store that keeps changing under us
LEASE_SECONDS = 600  # a claim not renewed for this long belongs to a run that is gone, wherever it ran
RENEW_SECONDS = 60  # how often a running run renews its claim: many renewals fit in a lease
_held: set[str] = set()  # tokens of the claims runs in this process hold (several flows may share one)


class ReleaseTaken(Exception):
    """Another live run holds the release id."""


class StoreContention(Exception):
    """`LATEST` or a claim kept changing under us: the store is being written by many runs."""


@dataclass(frozen=True)
class Claim:
    uri: str
    token: str


def claim_uri(output_uri: str, release_id: str) -> str:
    return join(output_uri, ".claims", f"{release_id}.json")


def _process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), to tell it from a later
    process that reuses its pid; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _lease_expired(holder: dict) -> bool:
    renewed = holder.get("renewed_at") or holder.get("claimed_at")
    try:
        age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(renewed)
    except (TypeError, ValueError):
        return False
    return age.total_seconds() > LEASE_SECONDS


def _holder_is_gone(holder: dict) -> bool:
    """Whether the run that made this claim is gone. From another host: its lease ran out. On
    this host: its process no longer exists, or its pid now belongs to another process (this one,
    or a later one: a container restarted with a fixed hostname reuses pids)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return _lease_expired(holder)
    if pid == os.getpid():
        # A claim of this process that no run here holds: left by an earlier process with our pid.
        return holder.get("token") not in _held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    started = holder.get("pid_started")
    return started is not None and _process_started(pid) not in (None, started)


def claim_release(output_uri: str, release_id: str) -> Claim:
    """Take `release_id` for this run, or raise `ReleaseTaken` naming the run that holds it."""
    uri = claim_uri(output_uri, release_id)
    token = uuid.uuid4().hex
    now = _now()
    mine = json.dumps({"token": token, "host": socket.gethostname(), "pid": os.getpid(),
                       "pid_started": _process_started(os.getpid()), "claimed_at": now, "renewed_at": now}).encode()
    for _ in range(_ATTEMPTS):
        current = read_versioned(uri)
        holder: dict = {}
        if current.data is not None:
            try:
                holder = json.loads(current.data)
            except ValueError:
                holder = {}  # a torn claim from a crash: nobody holds it
            if holder.get("token") == token:
                _held.add(token)
                return Claim(uri, token)  # our own write, retried after a lost answer
            if holder and not _holder_is_gone(holder):
                raise ReleaseTaken(
                    f"release id {release_id!r} is being written by another run (pid {holder.get('pid')} on "
                    f"{holder.get('host')}, since {holder.get('claimed_at')}, renewed {holder.get('renewed_at')}); "
                    f"choose another --release-id, wait {LEASE_SECONDS} s after its last renewal if that run is "
                    f"gone, or delete {uri}")
            log.warning("taking over the claim on release %r left by a run that is gone: %s", release_id, holder)
        if replace_if_unchanged(uri, mine, current):
            _held.add(token)
            return Claim(uri, token)
    raise StoreContention(f"could not claim release id {release_id!r}: {uri} kept changing")


def renew_claim(claim: Claim) -> bool:
    """Stamp the claim as still held; False when it is no longer ours (taken over)."""
    for _ in range(_ATTEMPTS):
        current = read_versioned(claim.uri)
        try:
            holder = json.loads(current.data) if current.data else {}
        except ValueError:
            holder = {}
        if holder.get("token") != claim.token:
            return False
        if replace_if_unchanged(claim.uri, json.dumps({**holder, "renewed_at": _now()}).encode(), current):
            return True
    return True  # the store kept changing under us, yet the claim was ours: try again next round


@contextlib.contextmanager
def keep_claim(claim: Claim | None, every: float = RENEW_SECONDS):
    """Renew `claim` every `every` seconds from a background thread while the block runs."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every):
            try:
                if not renew_claim(claim):
                    log.error("the claim %s was taken over by another run; this run no longer holds it", claim.uri)
                    return
            except Exception as exc:
                log.warning("could not renew the claim %s: %s", claim.uri, exc)

    thread = threading.Thread(target=renew, name="claim-keeper", daemon=True) if claim else None
    if thread:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread:
            thread.join()


def release_claim(claim: Claim | None) -> None:
    """Give the id back; a claim that is no longer ours (taken over) is left alone. Never raises:
    it runs as a failed run unwinds, whose own error is the one to report."""
    if claim is None:
        return
    _held.discard(claim.token)
    try:
        current = read_versioned(claim.uri)
        try:
            holder = json.loads(current.data) if current.data else {}
        except ValueError:
            holder = {}
        if holder.get("token") == claim.token:
            remove(claim.uri)
    except Exception as exc:
        log.warning("could not give back the claim %s: %s", claim.uri, exc)


def run_order(output_uri: str, release_id: str) -> tuple[str, str]:
    """When the run of a published release started, for ordering; the oldest possible when unknown."""
    try:
        info = json.loads(read_bytes(join(output_uri, "releases", release_id, "release.json"), what="release.json"))
    except (RowError, ValueError):
        return ("", release_id)
    return (info.get("run_started_at") or info.get("created_at") or "", release_id)


def advance_pointer(pointer_uri: str, output_uri: str, release_id: str, run_started_at: str) -> bool:
    """Point `pointer_uri` (`OUT/LATEST`, `OUT/VALIDATED`, …) at `release_id` of the store at
    `output_uri` unless it names a release of a later run; True when it now names this release."""
    mine = (run_started_at, release_id)
    for _ in range(_ATTEMPTS):
        current: Versioned = read_versioned(pointer_uri)
        named = current.data.decode(errors="replace").strip() if current.data else ""
        if named == release_id:
            return True
        if named and run_order(output_uri, named) > mine:
            log.warning("%s stays at %r: its run started after this one (%s)", pointer_uri, named, run_started_at)
            return False
        if replace_if_unchanged(pointer_uri, f"{release_id}\n".encode(), current):
            return True
    raise StoreContention(f"could not move {pointer_uri}: it kept changing")


def advance_latest(output_uri: str, release_id: str, run_started_at: str) -> bool:
    return advance_pointer(join(output_uri, "LATEST"), output_uri, release_id, run_started_at)
