"""One instance of each stage (engine, clarifier, detector) per worker process and config.

Models load when a stage is built, so building once per worker (not per row, not per partition)
is what keeps a partition's cost the cost of its images.
"""

from __future__ import annotations

import threading

_instances: dict[tuple[type, str], object] = {}
_lock = threading.Lock()


def worker_instance(cls: type, config):
    """The worker-wide `cls.from_config(config)`, built on first use (thread-safe)."""
    key = (cls, config.digest())
    with _lock:
        if key not in _instances:
            _instances[key] = cls.from_config(config)
        return _instances[key]


def forget_instances() -> None:
    """Drop every built stage: the next use builds it again (tests count builds this way)."""
    with _lock:
        _instances.clear()
