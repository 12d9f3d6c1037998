import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import pytest

from tasks.config import Config
from tasks.demo import write_demo
from tasks.plan import Job

# Tests that need these start real servers or clusters: they are the integration tests.
_INTEGRATION_FIXTURES = {"prefect_harness", "prefect_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if _INTEGRATION_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)


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
