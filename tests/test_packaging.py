"""A non-editable install: the wheel built from the checkout carries everything the gate needs."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_suites_and_passes_the_gate_tests(tmp_path):
    wheels, target, tests = tmp_path / "wheels", tmp_path / "site", tmp_path / "tests"
    # Built from the tracked files alone, as a clean clone would be: no stale build/ of the checkout.
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("clean_clarify-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    suites = sorted(p.name for p in (REPO / "data_contracts" / "suites").glob("*.json"))
    assert suites and all(f"data_contracts/suites/{name}" in names for name in suites), names

    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    tests.mkdir()
    for name in ("conftest.py", "test_gate.py"):
        shutil.copy(REPO / "tests" / name, tests / name)
    # Run from outside the checkout, with the installed copy first on the path.
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import tasks.gate as g; print(g.__file__); print(g.SUITES_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module, suites_dir = where.stdout.split()
    assert module.startswith(str(target)) and suites_dir.startswith(str(target)), where.stdout
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
