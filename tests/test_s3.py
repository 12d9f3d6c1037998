"""The real flow against object storage: moto's S3 server on 127.0.0.1, read and written by s3fs.

The demo dataset is uploaded to `s3://<bucket>/data/`, the flow reads the manifest and the images
from there and publishes to `s3://<bucket>/releases-store`. s3fs (through aiobotocore) and boto3
find the server through the standard AWS environment variables: `AWS_ENDPOINT_URL_S3`, dummy
credentials, a region.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import boto3
import moto.server as moto_server
import pyarrow.parquet as pq
import pytest
import s3fs

from flows.sanitize import sanitize
from tasks.demo import write_demo
from tasks.uris import parquet_from_bytes

pytestmark = pytest.mark.usefixtures("prefect_harness")

BUCKET = "clean-clarify-test"
MANIFEST = f"s3://{BUCKET}/data/manifest.parquet"
OUTPUT = f"s3://{BUCKET}/releases-store"
STORE = "releases-store/"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free loopback port, the AWS environment pointing at it, a bucket."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    no_files = str(tmp_path_factory.mktemp("aws") / "none")
    try:
        with pytest.MonkeyPatch.context() as env:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
                env.delenv(name, raising=False)
            env.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.setenv("AWS_CONFIG_FILE", no_files)  # the developer's ~/.aws plays no part
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", no_files)
            # fsspec caches filesystem instances: none made before the variables were set.
            s3fs.S3FileSystem.clear_instance_cache()
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            yield client
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def _keys(client, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _get(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def dataset(s3, tmp_path_factory) -> Path:
    """The demo dataset, written locally and uploaded under `data/`; returns the local folder."""
    folder = tmp_path_factory.mktemp("demo-s3")
    write_demo(str(folder))
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"data/{path.relative_to(folder).as_posix()}")
    return folder


@pytest.fixture(scope="module")
def first_release(s3, dataset):
    return sanitize(manifest=MANIFEST, output=OUTPUT, release_id="s3-1")


def test_a_release_is_published_to_the_bucket(s3, dataset, first_release):
    assert first_release["release_uri"] == f"{OUTPUT}/releases/s3-1"
    assert _get(s3, f"{STORE}LATEST").decode().strip() == "s3-1"
    release = f"{STORE}releases/s3-1/"
    keys = set(_keys(s3, release))
    assert f"{release}_SUCCESS" in keys and f"{release}release.json" in keys
    assert f"{release}report/index.html" in keys and f"{release}validation/release.json" in keys

    source = pq.read_table(dataset / "manifest.parquet")
    published = parquet_from_bytes(_get(s3, f"{release}manifest.parquet"))
    quarantined = parquet_from_bytes(_get(s3, f"{release}quarantine.parquet"))
    assert published.num_rows + quarantined.num_rows == source.num_rows == 8
    assert sorted(published.column("image_id").to_pylist() + quarantined.column("image_id").to_pylist()) == sorted(
        source.column("image_id").to_pylist())
    assert published.num_rows > 0
    for row in published.to_pylist():
        data = _get(s3, release + row["output_uri"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["image_id"]
        assert row["source_uri"].startswith(f"s3://{BUCKET}/data/"), row["source_uri"]
    # The run's scratch space is gone once the release is complete.
    assert _keys(s3, f"{STORE}.work/s3-1/") == []


def test_a_second_release_replaces_latest_and_leaves_no_temporary_files(s3, first_release):
    summary = sanitize(manifest=MANIFEST, output=OUTPUT, release_id="s3-2")
    assert summary["counts"]["published"] + summary["counts"]["quarantined"] == summary["counts"]["input"] == 8
    assert _get(s3, f"{STORE}LATEST").decode() == "s3-2\n"
    # Both releases stay complete and separate; the first is not touched by the second.
    for release_id in ("s3-1", "s3-2"):
        assert f"{STORE}releases/{release_id}/_SUCCESS" in _keys(s3, f"{STORE}releases/{release_id}/")
    temporary = [k for k in _keys(s3) if re.search(r"(^|/)\.[^/]*\.tmp$|\.tmp$|\.part$|/\.work/", k)]
    assert temporary == []


def test_a_transient_storage_error_is_retried(s3, dataset, monkeypatch):
    """A write that fails once (a dropped connection) costs a task retry, not the release."""
    failed: list[str] = []
    original = s3fs.S3FileSystem._pipe_file

    async def flaky_pipe_file(self, path, data, *args, **kwargs):
        if "/.work/s3-flaky/records/" in path and not failed:
            failed.append(path)
            raise ConnectionResetError(f"injected: connection reset while writing {path}")
        return await original(self, path, data, *args, **kwargs)

    # The sync `pipe_file` is bound when a filesystem is made: patch, then make a fresh one.
    monkeypatch.setattr(s3fs.S3FileSystem, "_pipe_file", flaky_pipe_file)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        summary = sanitize(manifest=MANIFEST, output=OUTPUT, release_id="s3-flaky")
    finally:
        monkeypatch.undo()
        s3fs.S3FileSystem.clear_instance_cache()
    assert len(failed) == 1
    assert summary["counts"]["published"] + summary["counts"]["quarantined"] == summary["counts"]["input"] == 8
    assert _get(s3, f"{STORE}LATEST").decode().strip() == "s3-flaky"
    assert f"{STORE}releases/s3-flaky/_SUCCESS" in _keys(s3, f"{STORE}releases/s3-flaky/")
    assert _keys(s3, f"{STORE}.work/s3-flaky/") == []


def test_conditional_writes_let_one_writer_win_on_s3(s3):
    from tasks.claims import ReleaseTaken, advance_latest, claim_release, release_claim
    from tasks.uris import read_versioned, replace_if_unchanged

    uri = f"s3://{BUCKET}/cas/LATEST"
    absent = read_versioned(uri)
    assert absent.data is None
    assert replace_if_unchanged(uri, b"a\n", absent)  # If-None-Match: *
    assert not replace_if_unchanged(uri, b"b\n", absent)
    seen = read_versioned(uri)
    assert seen.data == b"a\n" and seen.tag
    assert replace_if_unchanged(uri, b"c\n", seen)  # If-Match: the ETag read
    assert not replace_if_unchanged(uri, b"d\n", seen)
    assert _get(s3, "cas/LATEST") == b"c\n"

    claim = claim_release(f"s3://{BUCKET}/cas", "r")
    with pytest.raises(ReleaseTaken):
        claim_release(f"s3://{BUCKET}/cas", "r")
    release_claim(claim)
    assert _keys(s3, "cas/.claims/") == []

    for release_id, started in (("new", "2026-12-01T00:00:00+00:00"), ("old", "2026-11-01T00:00:00+00:00")):
        s3.put_object(Bucket=BUCKET, Key=f"cas/releases/{release_id}/release.json",
                      Body=f'{{"run_started_at": "{started}"}}'.encode())
    assert advance_latest(f"s3://{BUCKET}/cas", "new", "2026-12-01T00:00:00+00:00")
    assert not advance_latest(f"s3://{BUCKET}/cas", "old", "2026-11-01T00:00:00+00:00")
    assert _get(s3, "cas/LATEST") == b"new\n"


def test_a_row_may_not_read_outside_the_manifests_prefix(s3, dataset, tmp_path):
    import pyarrow as pa

    s3.put_object(Bucket=BUCKET, Key="private/secret.png", Body=sorted((dataset / "images").iterdir())[0].read_bytes())
    rows = [{"image_id": "sibling", "image_uri": f"s3://{BUCKET}/private/secret.png"},
            {"image_id": "climb", "image_uri": f"s3://{BUCKET}/data/../private/secret.png"}]
    local = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), local)
    s3.upload_file(str(local), BUCKET, "data/outside.parquet")
    config = {"gate": {"max_quarantine_fraction": 1.0}}
    sanitize(manifest=f"s3://{BUCKET}/data/outside.parquet", output=OUTPUT, config=config, release_id="s3-outside")
    reasons = parquet_from_bytes(_get(s3, f"{STORE}releases/s3-outside/quarantine.parquet")).column("reason").to_pylist()
    assert len(reasons) == 2 and all("inputs.allow" in reason for reason in reasons), reasons
