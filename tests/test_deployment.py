"""deployments/prefect.yaml on a real Prefect server: deploy, a process worker, a run, a release.

Everything a user types is typed here, as subprocesses of this virtualenv's `prefect`: a server on
127.0.0.1 with its own PREFECT_HOME and SQLite database, `prefect work-pool create`,
`prefect deploy --all`, `prefect worker start`, `prefect deployment run`. Every process started
is stopped, also when the test fails.
"""

from __future__ import annotations

import json
import os
import re

from prefect_processes import REPO, get_json, prefect_worker, run_prefect, wait_for_flow_run

PREFECT_FILE = "deployments/prefect.yaml"
POOL, DEPLOYMENT = "clean-clarify", "sanitize/daily"


def test_deploy_a_worker_runs_it_and_the_release_is_published(prefect_server, demo_manifest, tmp_path):
    api, env = prefect_server
    output = tmp_path / "release-store"
    run_prefect(env, "work-pool", "create", POOL, "--type", "process")

    # The deployment's default parameters come from the environment of `prefect deploy`.
    deploy_env = {**env, "CLEAN_CLARIFY_MANIFEST": demo_manifest, "CLEAN_CLARIFY_OUTPUT": str(output)}
    run_prefect(deploy_env, "--no-prompt", "deploy", "--all", "--prefect-file", PREFECT_FILE, timeout=180)
    deployment = get_json(f"{api}/deployments/name/{DEPLOYMENT}")
    assert deployment["parameters"]["manifest"] == demo_manifest
    assert deployment["parameters"]["output"] == str(output)
    assert deployment["parameters"]["release_id"] is None
    assert deployment["work_pool_name"] == POOL and "gpu" in deployment["tags"]
    # No code is pushed: the pull step sends the worker's runs to the checkout deployed from.
    [pull_step] = deployment["pull_steps"]
    directory = pull_step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert os.path.realpath(directory) == str(REPO)
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"

    ran = run_prefect(env, "deployment", "run", DEPLOYMENT, "--param", f"manifest={demo_manifest}",
                   "--param", f"output={output}", "--param", "release_id=deployed-1")
    flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", ran).group(1)

    with prefect_worker(env, POOL, tmp_path) as (worker, worker_log):
        state = wait_for_flow_run(api, flow_run_id, worker, worker_log, seconds=240)

    assert state["type"] == "COMPLETED", f"{state['type']}: {state.get('message')}\n{worker_log.read_text()[-6000:]}"
    assert (output / "LATEST").read_text().strip() == "deployed-1"
    release = output / "releases" / "deployed-1"
    assert (release / "_SUCCESS").exists()
    info = json.loads((release / "release.json").read_text())
    assert info["counts"]["published"] + info["counts"]["quarantined"] == info["counts"]["input"] == 8
