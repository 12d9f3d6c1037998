"""Where things live: resolving manifest URIs and writing through fsspec."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import posixpath
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)


class RowError(Exception):
    """A problem with one manifest row: the row is quarantined with this message as its reason."""


class NotARelease(ValueError):
    """A path given as a release holds none: the caller's mistake (exit 2), not a release that fails."""


class TransientStorageError(OSError):
    """The store did not answer (connection reset, timeout): not the row's fault. It fails the
    partition task, which Prefect retries, instead of quarantining the row."""


_TRANSIENT = (ConnectionError, TimeoutError)
RETRY_ATTEMPTS, RETRY_BACKOFF = 3, 0.5  # attempts at a store operation; seconds before the 2nd, doubled after


def _with_retries(action, what: str):
    """Run `action()`, retrying transient store errors with exponential backoff."""
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return action()
        except _TRANSIENT as exc:
            if attempt == RETRY_ATTEMPTS - 1:
                raise TransientStorageError(f"{what}: {type(exc).__name__}: {exc} (after {RETRY_ATTEMPTS} attempts)") from exc
            time.sleep(RETRY_BACKOFF * 2**attempt)


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


# fsspec names more than one protocol for the same store; confinement compares canonical names.
_PROTOCOL_ALIASES = {"s3a": "s3", "gs": "gcs", "file": "", "local": ""}
# Percent-encoded separators: HTTP clients and servers decode them, so `..%2f` would climb.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_WEB = ("http", "https")


def _canonical_url(uri: str) -> str:
    protocol, _, rest = uri.partition("://")
    protocol = _PROTOCOL_ALIASES.get(protocol.lower(), protocol.lower())
    if not protocol:
        return os.path.realpath(rest or "/")
    if protocol in _WEB:
        parts = urllib.parse.urlsplit(f"{protocol}://{rest}")
        if _ENCODED_SEPARATOR.search(parts.path) or "\\" in parts.path:
            raise RowError(f"URI {uri!r} encodes a path separator; refused")
        # Decoded before `..` is folded, as the client that sends it decodes `%2e` (then quoted again).
        path = urllib.parse.quote(posixpath.normpath(urllib.parse.unquote(parts.path) or "/"), safe="/:@!$&'()*+,;=~")
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc.lower(), path, parts.query, ""))
    return f"{protocol}://{posixpath.normpath(rest).lstrip('/')}"


def canonical(uri: str) -> str:
    """`uri` with `..` and `//` folded, `file://` as a plain path and local links followed: the
    form in which confinement compares a row's URI with the roots it may read, and then reads it.

    A chained URL (`simplecache::s3://…`, `zip://member::s3://…/a.zip`) is canonical layer by
    layer; its last layer names the store that is read.
    """
    if "::" in uri:
        return "::".join(canonical(layer) if has_protocol(layer) else layer.lower() for layer in uri.split("::"))
    if has_protocol(uri):
        return _canonical_url(uri)
    return os.path.realpath(uri)


def _under_path(uri: str, root: str) -> bool:
    if uri == root:
        return True
    return uri.startswith(root.rstrip("/\\") + ("/" if has_protocol(root) else os.sep))


def is_under(uri: str, root: str) -> bool:
    """Whether canonical `uri` is `root` or lies inside it: whole path segments (`/a/bc` is not
    under `/a/b`), and for a chain the same layers (protocols) with its last layer, the store that
    is read, under the root's (`s3://b/set/x::http://…` is not under `s3://b/set`)."""
    layers, root_layers = uri.split("::"), root.split("::")
    if len(layers) != len(root_layers):
        return False
    for layer, root_layer in zip(layers[:-1], root_layers[:-1]):
        if layer.partition("://")[0] != root_layer.partition("://")[0]:
            return False
    return _under_path(layers[-1], root_layers[-1])


def resolve(uri: str, root: str, allow: tuple[str, ...] | list[str] = ()) -> str:
    """Resolve a manifest URI to the canonical URI to read, confined to what a row may reach.

    Relative paths resolve under `root` (the manifest's folder or bucket prefix). The result, after
    `..` is folded and local links are followed, must lie under `root` or under one of `allow`
    (the config's `inputs.allow`); anything else, absolute paths, `file://`, `http(s)://`, other
    buckets and chained URLs included, is refused with a `RowError` before any request is made.
    """
    if not has_protocol(uri) and not os.path.isabs(uri):
        normalised = posixpath.normpath(uri.replace("\\", "/"))
        if normalised == ".." or normalised.startswith("../"):
            raise RowError(f"relative URI {uri!r} escapes the manifest's folder {root!r}")
        uri = join(root, normalised)
    target = canonical(uri)
    roots = (canonical(root), *(canonical(entry) for entry in allow))
    if not any(is_under(target, allowed) for allowed in roots):
        raise RowError(
            f"URI {uri!r} is outside the manifest's folder {root!r} and the roots that inputs.allow lists "
            f"({list(allow) or 'none'}); add its root to inputs.allow in the config to read it"
        )
    return target


def read_bytes(uri: str, what: str = "image", max_bytes: int | None = None) -> bytes:
    """The bytes of `uri`; a `RowError` when it is missing, unreadable or over `max_bytes` (read no
    further than one byte past the cap, so a huge file cannot fill the worker's memory)."""

    # A web root admits no redirect: its target was never checked against the roots.
    options = {"allow_redirects": False} if uri.partition("://")[0].lower() in _WEB else {}

    def read() -> bytes:
        with fsspec.open(uri, "rb", **options) as f:
            return f.read() if max_bytes is None else f.read(max_bytes + 1)

    try:
        data = _with_retries(read, f"reading {uri}")
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
    if max_bytes is not None and len(data) > max_bytes:
        raise RowError(f"{what} {uri} is over inputs.max_bytes ({max_bytes} bytes); raise the setting to read it")
    return data


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
        _with_retries(lambda: _replace_local(path, data), f"writing {uri}")
    else:
        _with_retries(lambda: fs.pipe_file(path, data), f"writing {uri}")


def _replace_local(path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@dataclass(frozen=True)
class Versioned:
    """A small file's content as read, with what a conditional write compares against: the
    object's ETag on S3, the bytes themselves elsewhere. `data` None: the file did not exist."""

    data: bytes | None
    tag: str | None = None


def _is_s3(fs) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


@contextlib.contextmanager
def _local_lock(path: str):
    """An exclusive lock beside `path` for a read-compare-write; the kernel frees it if the holder dies."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f".{os.path.basename(path)}.lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_or_none(fs, path: str) -> bytes | None:
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None


def read_versioned(uri: str) -> Versioned:
    """Read a small control file (`LATEST`, a claim) for a later `replace_if_unchanged`."""
    fs, path = fsspec.core.url_to_fs(uri)

    def read() -> Versioned:
        if not _is_s3(fs):
            return Versioned(_read_or_none(fs, path))
        fs.invalidate_cache(path)
        try:
            tag = fs.info(path)["ETag"]  # read before the bytes: a change in between fails the write
        except FileNotFoundError:
            return Versioned(None)
        data = _read_or_none(fs, path)
        return Versioned(data, tag if data is not None else None)

    return _with_retries(read, f"reading {uri}")


def replace_if_unchanged(uri: str, data: bytes, expected: Versioned) -> bool:
    """Write `data` to `uri` only if it still holds what `expected` read (compare-and-swap);
    False when another writer got there first.

    Local files: under a lock file, compared byte for byte, replaced atomically. S3: a conditional
    PUT (`If-Match` the ETag read, or `If-None-Match: *` when it did not exist). Other stores have
    no conditional write in fsspec: compared then written, which a concurrent writer can race.
    """
    fs, path = fsspec.core.url_to_fs(uri)
    if isinstance(fs, LocalFileSystem):
        with _local_lock(path):
            if _read_or_none(fs, path) != expected.data:
                return False
            _replace_local(path, data)
            return True
    if _is_s3(fs):
        condition = {"IfMatch": expected.tag} if expected.data is not None else {"IfNoneMatch": "*"}
        try:
            _with_retries(lambda: fs.pipe_file(path, data, **condition), f"writing {uri}")
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        fs.invalidate_cache(path)
        return True
    log.warning("%s: this store has no conditional write; %s is compared, then written", uri, uri)
    if _read_or_none(fs, path) != expected.data:
        return False
    _with_retries(lambda: fs.pipe_file(path, data), f"writing {uri}")
    return True


def _precondition_failed(exc: BaseException) -> bool:
    """Whether a store error is a failed write condition (HTTP 412, or 409 for a racing create)."""
    for error in (exc, exc.__cause__, exc.__context__):
        response = getattr(error, "response", None) or {}
        if str(response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return True
        if "PreconditionFailed" in str(error) or "Precondition Failed" in str(error):
            return True
    return False


def exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return _with_retries(lambda: fs.exists(path), f"looking up {uri}")


def remove(uri: str) -> None:
    """Delete one file; nothing when it is already gone."""
    fs, path = fsspec.core.url_to_fs(uri)

    def run() -> None:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(path)

    _with_retries(run, f"deleting {uri}")


def remove_tree(uri: str) -> None:
    fs, path = fsspec.core.url_to_fs(uri)

    def run() -> None:
        if fs.exists(path):
            fs.rm(path, recursive=True)

    _with_retries(run, f"deleting {uri}")


def move(source_uri: str, target_uri: str) -> None:
    fs, source = fsspec.core.url_to_fs(source_uri)
    _, target = fsspec.core.url_to_fs(target_uri)

    def run() -> None:
        fs.makedirs(fs._parent(target), exist_ok=True)
        fs.mv(source, target)

    _with_retries(run, f"moving {source_uri} to {target_uri}")


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


def read_file(uri: str) -> bytes:
    """The whole file at `uri` (a file of the run's own: no cap), transient errors retried; other
    errors (FileNotFoundError, ...) as the store raised them."""

    def read() -> bytes:
        with fsspec.open(uri, "rb") as f:
            return f.read()

    return _with_retries(read, f"reading {uri}")


def read_parquet(uri: str):
    return parquet_from_bytes(read_file(uri))
