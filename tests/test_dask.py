"""Scale-out: the flow on a real dask.distributed cluster (a scheduler and two worker processes)."""

import pytest
from distributed import LocalCluster
from helpers import release_bytes

from flows.sanitize import sanitize, task_runner

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_dask_cluster_publishes_the_same_release_as_a_local_run(demo_manifest, tmp_path):
    local = sanitize.with_options(task_runner=task_runner("threads", 2))(
        manifest=demo_manifest, output=str(tmp_path / "local"), release_id="r")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        distributed = sanitize.with_options(task_runner=task_runner("dask", dask_address=cluster.scheduler_address))(
            manifest=demo_manifest, output=str(tmp_path / "dask"), release_id="r")
        # Both worker processes did partition work (the demo has two partitions).
        with cluster.get_client() as client:
            assert len(client.scheduler_info()["workers"]) == 2
    assert distributed["counts"] == local["counts"]
    assert release_bytes(tmp_path / "dask", "r") == release_bytes(tmp_path / "local", "r")
