import os
import threading
from pathlib import Path

import pytest

from tasks.uris import (
    RowError,
    Versioned,
    parent_of,
    read_bytes,
    read_versioned,
    replace_atomically,
    replace_if_unchanged,
    resolve,
)


def test_relative_paths_resolve_under_the_manifest_folder():
    assert resolve("images/a.png", "/data/set") == "/data/set/images/a.png"
    assert resolve("images/../b.png", "/data/set") == "/data/set/b.png"
    assert resolve("photos/a.png", "s3://bucket/set") == "s3://bucket/set/photos/a.png"
    # Absolute forms inside the manifest's own folder or prefix are the same place.
    assert resolve("/data/set/a.png", "/data/set") == "/data/set/a.png"
    assert resolve("file:///data/set/a.png", "/data/set") == "/data/set/a.png"
    assert resolve("s3://bucket/set/x/../a.png", "s3://bucket/set") == "s3://bucket/set/a.png"


@pytest.mark.parametrize("uri, root", [
    ("/abs/a.png", "/data/set"),
    ("/data/settings/a.png", "/data/set"),  # a sibling whose name starts like the root
    ("file:///etc/passwd", "/data/set"),
    ("http://127.0.0.1:9/secret.png", "/data/set"),
    ("https://example.com/a.png", "s3://bucket/set"),
    ("s3://other/a.png", "s3://bucket/set"),
    ("s3://bucket/set/../private/a.png", "s3://bucket/set"),
    ("s3://bucket/settings/a.png", "s3://bucket/set"),
    ("s3a://other/a.png", "s3://bucket/set"),
    ("simplecache::s3://bucket/set/a.png", "s3://bucket/set"),
    ("zip://a.png::s3://bucket/set/x.zip", "s3://bucket/set"),
    ("s3://bucket/set/x::http://127.0.0.1:9/a.png", "s3://bucket/set"),
    ("memory://a.png", "/data/set"),
    ("http://127.0.0.1:9/set/%2e%2e/secret.png", "http://127.0.0.1:9/set"),
    ("http://127.0.0.1:9/set/.%2E/secret.png", "http://127.0.0.1:9/set"),
    ("%2e%2e/secret.png", "http://127.0.0.1:9/set"),
    ("simplecache::s3://bucket/set/../private/a.png", "simplecache::s3://bucket/set"),
    ("simplecache::s3://bucket/settings/a.png", "simplecache::s3://bucket/set"),
    ("simplecache::s3://bucket/set/x::http://127.0.0.1:9/a", "simplecache::s3://bucket/set"),
    ("blockcache::s3://bucket/set/a.png", "simplecache::s3://bucket/set"),
])
def test_uris_outside_the_manifest_folder_are_refused_by_default(uri, root):
    with pytest.raises(RowError, match=r"add its root to inputs\.allow"):
        resolve(uri, root)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9/set/..%2fsecret.png", "http://127.0.0.1:9/set/..%5Csecret.png"])
def test_web_paths_that_encode_a_separator_are_refused(uri):
    with pytest.raises(RowError, match="encodes a path separator"):
        resolve(uri, "http://127.0.0.1:9/set")


def test_the_allow_list_admits_its_roots_and_nothing_beside_them():
    allow = ("/mnt/photos", "s3://shared/photos/", "https://cdn.example.com/img")
    assert resolve("/mnt/photos/a.png", "/data/set", allow) == "/mnt/photos/a.png"
    assert resolve("file:///mnt/photos/x/../a.png", "/data/set", allow) == "/mnt/photos/a.png"
    assert resolve("s3a://shared/photos/a.png", "/data/set", allow) == "s3://shared/photos/a.png"
    assert resolve("https://CDN.example.com/img/a.png", "/data/set", allow) == "https://cdn.example.com/img/a.png"
    chain = ("simplecache::s3://shared/photos",)
    assert resolve("simplecache::s3://shared/photos/a.png", "/data/set", chain) == "simplecache::s3://shared/photos/a.png"
    assert resolve("zip://b.png::s3://shared/photos/a.zip", "/data/set", ("zip::s3://shared/photos",)) == (
        "zip://b.png::s3://shared/photos/a.zip")
    assert resolve("b.png", "simplecache::s3://shared/photos") == "simplecache::s3://shared/photos/b.png"
    for outside in ("/mnt/photos2/a.png", "s3://shared/private/a.png", "https://cdn.example.com/img2/a.png",
                    "https://cdn.example.com/img/../admin", "http://cdn.example.com/img/a.png"):
        with pytest.raises(RowError, match=r"inputs\.allow"):
            resolve(outside, "/data/set", allow)


def test_a_link_inside_the_folder_cannot_lead_outside_it(tmp_path):
    data, secret = tmp_path / "data", tmp_path / "secret.png"
    data.mkdir()
    secret.write_bytes(b"secret")
    (data / "innocent.png").symlink_to(secret)
    with pytest.raises(RowError, match="outside the manifest's folder"):
        resolve("innocent.png", str(data))


def test_reads_stop_at_the_size_cap(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(b"x" * 1000)
    assert read_bytes(str(path), max_bytes=1000) == b"x" * 1000
    with pytest.raises(RowError, match=r"over inputs.max_bytes \(999 bytes\)"):
        read_bytes(str(path), max_bytes=999)


def test_compare_and_swap_lets_one_writer_win(tmp_path):
    uri = str(tmp_path / "LATEST")
    absent = read_versioned(uri)
    assert absent == Versioned(None)
    assert replace_if_unchanged(uri, b"a\n", absent)
    assert not replace_if_unchanged(uri, b"b\n", absent)  # it no longer is absent
    seen = read_versioned(uri)
    assert replace_if_unchanged(uri, b"c\n", seen)
    assert not replace_if_unchanged(uri, b"d\n", seen)
    assert Path(uri).read_bytes() == b"c\n"

    # Many threads that all read the same version: exactly one write lands.
    seen = read_versioned(uri)
    wins = []
    threads = [threading.Thread(target=lambda k=k: wins.append(replace_if_unchanged(uri, f"{k}\n".encode(), seen)))
               for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(wins) == 1


@pytest.mark.parametrize("uri", ["../a.png", "images/../../a.png", "..", "..\\a.png"])
def test_relative_paths_may_not_escape(uri):
    with pytest.raises(RowError, match="escapes the manifest's folder"):
        resolve(uri, "/data/set")


def test_parent_of():
    assert parent_of("s3://bucket/set/manifest.parquet") == "s3://bucket/set"
    assert parent_of("/data/set/manifest.parquet") == "/data/set"


def test_replace_atomically_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "LATEST"
    replace_atomically(str(target), b"one\n")
    replace_atomically(str(target), b"two\n")
    assert target.read_bytes() == b"two\n"
    assert os.listdir(tmp_path) == ["LATEST"]


class FlakyFileSystem:
    """Fails the first `failures` opens with a connection reset, like a store under load."""

    def __init__(self, failures):
        self.failures = failures

    def __call__(self, uri, mode="rb"):
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        import io

        return io.BytesIO(b"pixels")


def test_transient_read_errors_are_retried_then_escalated(monkeypatch):
    import fsspec

    import tasks.uris
    from tasks.uris import TransientStorageError, read_bytes

    monkeypatch.setattr(tasks.uris, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(fsspec, "open", FlakyFileSystem(2))
    assert read_bytes("s3://bucket/a.png") == b"pixels"  # two resets, third attempt succeeds
    monkeypatch.setattr(fsspec, "open", FlakyFileSystem(99))
    with pytest.raises(TransientStorageError, match="after 3 attempts"):
        read_bytes("s3://bucket/a.png")


def test_a_transient_error_fails_the_partition_instead_of_quarantining_the_row(monkeypatch, make_job):
    import fsspec

    import tasks.uris
    from tasks.partition import edit_row
    from tasks.uris import TransientStorageError

    monkeypatch.setattr(tasks.uris, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(fsspec, "open", FlakyFileSystem(99))
    with pytest.raises(TransientStorageError):
        edit_row({"image_id": "a", "_row": 0, "image_uri": "a.png"}, make_job())
