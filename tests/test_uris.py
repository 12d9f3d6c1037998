import os

import pytest

from tasks.uris import RowError, parent_of, replace_atomically, resolve


def test_relative_paths_resolve_under_the_manifest_folder():
    assert resolve("images/a.png", "/data/set") == "/data/set/images/a.png"
    assert resolve("images/../b.png", "/data/set") == "/data/set/b.png"
    assert resolve("photos/a.png", "s3://bucket/set") == "s3://bucket/set/photos/a.png"
    assert resolve("s3://other/a.png", "/data/set") == "s3://other/a.png"
    assert resolve("/abs/a.png", "/data/set") == "/abs/a.png"


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

    monkeypatch.setattr(tasks.uris, "_BACKOFF", 0.01)
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

    monkeypatch.setattr(tasks.uris, "_BACKOFF", 0.01)
    monkeypatch.setattr(fsspec, "open", FlakyFileSystem(99))
    with pytest.raises(TransientStorageError):
        edit_row({"image_id": "a", "_row": 0, "image_uri": "a.png"}, make_job())
