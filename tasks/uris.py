"""Where things live: resolving manifest URIs and writing through fsspec."""

from __future__ import annotations

import os
import posixpath
import time
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem


class RowError(Exception):
    """A problem with one manifest row: the row is quarantined with this message as its reason."""


class TransientStorageError(OSError):
    """The store did not answer (connection reset, timeout): not the row's fault. It fails the
    partition task, which Prefect retries, instead of quarantining the row."""


_TRANSIENT = (ConnectionError, TimeoutError)
_ATTEMPTS, _BACKOFF = 3, 0.5  # seconds, doubled per attempt


def _with_retries(action, what: str):
    """Run `action()`, retrying transient store errors with exponential backoff."""
    for attempt in range(_ATTEMPTS):
        try:
            return action()
        except _TRANSIENT as exc:
            if attempt == _ATTEMPTS - 1:
                raise TransientStorageError(f"{what}: {type(exc).__name__}: {exc} (after {_ATTEMPTS} attempts)") from exc
            time.sleep(_BACKOFF * 2**attempt)


def has_protocol(uri: str) -> bool:
    return "://" in uri


def parent_of(uri: str) -> str:
    """The folder holding `uri` (a local path or an fsspec URL)."""
    if has_protocol(uri):
        protocol, _, path = uri.partition("://")
        return f"{protocol}://{posixpath.dirname(path)}"
    return os.path.dirname(os.path.abspath(uri))


def join(base: str, *parts: str) -> str:
    if has_protocol(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def resolve(uri: str, root: str) -> str:
    """Resolve a manifest URI: URLs and absolute paths as given, relative paths under `root`.

    A relative path that climbs out of `root` (`../secrets.png`) is refused: a manifest must not
    be able to read files beside the dataset it describes.
    """
    if has_protocol(uri) or os.path.isabs(uri):
        return uri
    normalised = posixpath.normpath(uri.replace("\\", "/"))
    if normalised == ".." or normalised.startswith("../"):
        raise RowError(f"relative URI {uri!r} escapes the manifest's folder {root!r}")
    return join(root, normalised)


def read_bytes(uri: str, what: str = "image") -> bytes:
    def read() -> bytes:
        with fsspec.open(uri, "rb") as f:
            return f.read()

    try:
        return _with_retries(read, f"reading {uri}")
    except TransientStorageError:
        raise
    except FileNotFoundError:
        raise RowError(f"{what} not found: {uri}") from None
    except IsADirectoryError:
        raise RowError(f"{what} URI is a folder, not a file: {uri}") from None
    except PermissionError:
        raise RowError(f"{what} not readable (permission denied): {uri}") from None
    except OSError as exc:
        raise RowError(f"{what} could not be read from {uri}: {exc}") from None


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = fsspec.core.url_to_fs(uri)

    def write() -> None:
        fs.makedirs(fs._parent(path), exist_ok=True)
        fs.pipe_file(path, data)  # one object, written whole: a retry overwrites, never duplicates

    _with_retries(write, f"writing {uri}")


def replace_atomically(uri: str, data: bytes) -> None:
    """Write `uri` so that readers see the old content or the new one, never a partial file.

    Local files go through a temporary file and `os.replace` (atomic on POSIX). Object stores
    (S3, GCS, ...) make a single PUT visible all at once, so a plain write is already atomic there.
    """
    fs, path = fsspec.core.url_to_fs(uri)
    if isinstance(fs, LocalFileSystem):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def copy(source_uri: str, target_uri: str) -> None:
    """Copy one file within a store (the cache and the releases live side by side)."""
    fs, source = fsspec.core.url_to_fs(source_uri)
    _, target = fsspec.core.url_to_fs(target_uri)
    fs.makedirs(fs._parent(target), exist_ok=True)
    fs.copy(source, target)


def exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


def remove_tree(uri: str) -> None:
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_parquet(uri: str, table) -> None:
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(uri, buffer.getvalue())


def parquet_from_bytes(data: bytes):
    """A Parquet file's table from its bytes.

    Parsed from an in-memory buffer with the plain file reader: after `import torch`, pyarrow 25-26
    reading through a Python file object or its dataset layer aborts the interpreter at exit
    ("terminate called without an active exception", exit code 134) in most runs; this path
    never did in 20 tries.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)


def read_parquet(uri: str):
    with fsspec.open(uri, "rb") as f:
        return parquet_from_bytes(f.read())
