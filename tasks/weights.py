"""Model weights the user provides: read from any fsspec URL and checked against their sha256."""

from __future__ import annotations

import hashlib

from tasks.uris import TransientStorageError, read_bytes


class WeightsError(ValueError):
    """The configured weights cannot be used (missing, wrong hash, unknown format)."""


def read_verified(uri: str, sha256: str | None, what: str) -> tuple[bytes, str]:
    """The bytes at `uri` and their sha256 digest; refused when `sha256` is given and differs.

    `what` names the weights in messages ("sr weights", "lama weights").
    """
    try:
        data = read_bytes(uri, what=what)
    except TransientStorageError:
        raise  # the store's hiccup: the task is retried, the weights are not refused
    except Exception as exc:  # RowError from read_bytes reads well here too
        raise WeightsError(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and digest != sha256.lower():
        raise WeightsError(f"{what} {uri}: sha256 is {digest}, the config expects {sha256}")
    return data, digest
