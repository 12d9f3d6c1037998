import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np
import pytest
from PIL import Image

from tasks.config import Config
from tasks.demo import write_demo
from tasks.plan import Job


# For tests of the plumbing (resume, scale-out, storage), not of fill quality: every row is
# published whatever its metrics, so that a borderline fill cannot fail a test about kill -9.
LENIENT_GATE = {
    "gate": {
        "max_quarantine_fraction": 1.0,
        "overrides": [
            {"suite": "image_remove", "expectation": "expect_column_values_to_be_between", "column": column,
             "kwargs": {"min_value": 0.0, "max_value": 1e12}}
            for column in ("texture_ratio", "noise_ratio", "seam_score")
        ] + [
            {"suite": "release", "expectation": "expect_column_median_to_be_between", "column": column,
             "kwargs": {"min_value": 0.0, "max_value": 1e12}}
            for column in ("texture_ratio", "noise_ratio", "structure_continuity")
        ],
    }
}


@pytest.fixture(scope="session")
def prefect_harness():
    """One real (temporary, SQLite-backed) Prefect API server for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def prefect_server(tmp_path):
    """A `prefect server start` of its own on 127.0.0.1; yields (api_url, env for the Prefect CLI)."""
    from prefect_processes import running_prefect_server

    with running_prefect_server(tmp_path) as api_and_env:
        yield api_and_env


@pytest.fixture(scope="session")
def demo_manifest(tmp_path_factory) -> str:
    return write_demo(str(tmp_path_factory.mktemp("demo")))


@pytest.fixture
def make_job(tmp_path):
    """A Job whose manifest folder is `tmp_path/data` and whose release goes to `tmp_path/out`."""

    def make(**config) -> Job:
        root = tmp_path / "data"
        root.mkdir(exist_ok=True)
        return Job(
            manifest_uri=str(root / "manifest.parquet"),
            manifest_root=str(root),
            release_uri=str(tmp_path / "out" / "releases" / "r1"),
            work_uri=str(tmp_path / "out" / ".work" / "r1"),
            config=Config.model_validate(config),
        )

    return make


def save(path, pixels: np.ndarray, fmt: str = "PNG", **kwargs) -> str:
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **kwargs)
    return path
