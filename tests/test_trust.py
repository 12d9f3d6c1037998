"""Trust boundaries and crash safety, end to end: what a manifest row may reach, damaged cache
entries, a manifest changed mid-run, release ids and exit codes."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import subprocess
import sys
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import LENIENT_GATE, save
from skimage import data as photos

from data_contracts.manifest import ManifestError
from flows.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from flows.sanitize import sanitize
from tasks.claims import claim_release, release_claim
from tasks.config import Config
from tasks.plan import RunRefused, plan_release
from tasks.publish import publish_release

CLI = [sys.executable, "-m", "flows.cli"]


def manifest(folder, rows: list[dict]) -> str:
    path = folder / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.fixture
def photo_folder(tmp_path):
    data = tmp_path / "data"
    save(data / "coffee.png", photos.coffee())
    return data


class CountingServer:
    """An HTTP server on loopback that serves one PNG and counts the requests it gets."""

    def __init__(self, body: bytes):
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path.endswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/secret.png")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.usefixtures("prefect_harness")
def test_rows_reach_only_the_manifest_folder_unless_the_config_allows_more(tmp_path, photo_folder):
    outside = tmp_path / "elsewhere"
    save(outside / "secret.png", photos.camera())
    server = CountingServer((outside / "secret.png").read_bytes())
    try:
        rows = [
            {"image_id": "inside", "image_uri": "coffee.png"},
            {"image_id": "absolute", "image_uri": str(outside / "secret.png")},
            {"image_id": "file-url", "image_uri": f"file://{outside / 'secret.png'}"},
            {"image_id": "web", "image_uri": f"{server.url}/secret.png"},
            {"image_id": "climb", "image_uri": "sub/../../elsewhere/secret.png"},
        ]
        path = manifest(photo_folder, rows)
        summary = sanitize(manifest=path, output=str(tmp_path / "out"), config=LENIENT_GATE, release_id="strict")
        release = tmp_path / "out" / "releases" / "strict"
        quarantined = {r["image_id"]: r["reason"] for r in pq.read_table(release / "quarantine.parquet").to_pylist()}
        assert pq.read_table(release / "manifest.parquet").column("image_id").to_pylist() == ["inside"]
        assert set(quarantined) == {"absolute", "file-url", "web", "climb"}
        for image_id in ("absolute", "file-url", "web"):
            assert quarantined[image_id].startswith("read: URI ") and "inputs.allow" in quarantined[image_id]
        assert server.requests == []  # no request left for a refused URI
        assert summary["counts"]["quarantined"] == 4

        config = {**LENIENT_GATE, "inputs": {"allow": [str(outside), f"{server.url}/"]}}
        sanitize(manifest=path, output=str(tmp_path / "out"), config=config, release_id="allowed")
        release = tmp_path / "out" / "releases" / "allowed"
        assert pq.read_table(release / "manifest.parquet").column("image_id").to_pylist() == [
            "inside", "absolute", "file-url", "web"]
        assert server.requests  # the allowed web root was read
    finally:
        server.close()


@pytest.mark.usefixtures("prefect_harness")
def test_files_over_the_size_cap_are_quarantined_naming_the_setting(tmp_path, photo_folder):
    path = manifest(photo_folder, [{"image_id": "big", "image_uri": "coffee.png"}])
    config = {**LENIENT_GATE, "inputs": {"max_bytes": 1000}}
    sanitize(manifest=path, output=str(tmp_path / "out"), config=config, release_id="capped")
    reason = pq.read_table(tmp_path / "out" / "releases" / "capped" / "quarantine.parquet").column("reason")[0].as_py()
    assert reason.startswith("read: image ") and "over inputs.max_bytes (1000 bytes)" in reason


@pytest.mark.usefixtures("prefect_harness")
def test_damaged_cache_entries_are_computed_again_never_published(tmp_path, photo_folder):
    save(photo_folder / "camera.png", photos.camera())
    rows = [{"image_id": f"row-{k}", "image_uri": name, "boxes": [[40.0 + 9 * k, 50.0, 90.0 + 9 * k, 100.0]]}
            for k, name in enumerate(["coffee.png", "camera.png", "coffee.png"])]
    path = manifest(photo_folder, rows)
    output = tmp_path / "out"
    first = sanitize(manifest=path, output=str(output), config=LENIENT_GATE, release_id="first")
    assert first["counts"]["computed"] == 3
    cut = 0
    for entry in (output / ".cache").rglob("*"):
        if entry.is_file() and entry.stat().st_size > 1024:
            entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
            cut += 1
    assert cut == 3  # every cached image

    second = sanitize(manifest=path, output=str(output), config=LENIENT_GATE, release_id="second")
    assert second["counts"]["computed"] == 3 and second["counts"]["reused"] == 0
    release = output / "releases" / "second"
    published = pq.read_table(release / "manifest.parquet").to_pylist()
    assert len(published) == 3
    for row in published:
        assert hashlib.sha256((release / row["output_uri"]).read_bytes()).hexdigest() == row["sha256"]
    before = {r["image_id"]: r["sha256"] for r in pq.read_table(output / "releases" / "first" / "manifest.parquet").to_pylist()}
    assert {r["image_id"]: r["sha256"] for r in published} == before

    # The entries were rewritten whole: a third run reuses all of them.
    third = sanitize(manifest=path, output=str(output), config=LENIENT_GATE, release_id="third")
    assert third["counts"]["reused"] == 3


def test_a_manifest_changed_during_the_run_is_not_published(tmp_path, photo_folder):
    path = manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png", "caption": "planned"}])
    plan = plan_release(path, str(tmp_path / "out"), Config(), "r")
    try:
        manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png", "caption": "swapped"}])
        with pytest.raises(ManifestError, match="changed during the run"):
            publish_release(plan, [])
    finally:
        release_claim(plan.claim)
    assert not (tmp_path / "out" / "releases" / "r" / "_SUCCESS").exists()
    assert not (tmp_path / "out" / "LATEST").exists()


def test_a_release_id_held_by_a_live_run_is_refused(tmp_path, photo_folder):
    path = manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png"}])
    held = claim_release(str(tmp_path / "out"), "busy")
    try:
        (tmp_path / "out" / "releases" / "busy").mkdir(parents=True)
        (tmp_path / "out" / "releases" / "busy" / "partial.png").write_bytes(b"being written")
        with pytest.raises(RunRefused, match="being written by another run"):
            plan_release(path, str(tmp_path / "out"), Config(), "busy")
        # The other run's files are untouched.
        assert (tmp_path / "out" / "releases" / "busy" / "partial.png").read_bytes() == b"being written"
    finally:
        release_claim(held)


@pytest.mark.integration  # each case starts the CLI
@pytest.mark.parametrize("release_id", ["x\ny", "../up", ".hidden", "a/b", "", "x" * 129, "café"])
def test_bad_release_ids_exit_2_before_anything_starts(tmp_path, photo_folder, release_id):
    path = manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png"}])
    done = subprocess.run([*CLI, "run", path, "--output", str(tmp_path / "out"), "--release-id", release_id],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USAGE, done.stderr[-2000:]
    assert "is not allowed" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.integration  # starts the CLI
def test_usage_errors_exit_2(tmp_path, photo_folder):
    path = manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png"}])
    (tmp_path / "afile").write_text("not a folder")
    done = subprocess.run([*CLI, "run", path, "--output", str(tmp_path / "afile" / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USAGE and "is a file, not a folder" in done.stderr, done.stderr[-2000:]

    clashing = manifest(tmp_path, [{"image_id": "a", "image_uri": "data/coffee.png", "sha256": "mine"}])
    done = subprocess.run([*CLI, "run", clashing, "--output", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == EXIT_USAGE and "['sha256'] collide" in done.stderr, done.stderr[-2000:]


@pytest.mark.usefixtures("prefect_harness")
def test_a_storage_failure_exits_3_not_the_gates_1(tmp_path, photo_folder, capsys):
    path = manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png"}])
    (tmp_path / "out" / "LATEST").mkdir(parents=True)  # the store cannot take the pointer
    code = main(["run", path, "--output", str(tmp_path / "out"), "--release-id", "r"])
    assert code == EXIT_ERROR, capsys.readouterr().err[-2000:]
    assert "IsADirectoryError" in capsys.readouterr().err
    (tmp_path / "out" / "LATEST").rmdir()
    assert main(["run", path, "--output", str(tmp_path / "out"), "--release-id", "r2"]) == EXIT_OK
    assert (tmp_path / "out" / "LATEST").read_text() == "r2\n"


def test_cache_keys_name_the_device_and_the_libraries_that_make_the_bytes():
    import cv2
    import onnxruntime
    import PIL
    import torch

    from tasks.cache import content_key, runtime_versions

    runtime = runtime_versions("cpu")
    assert runtime == {"device": "cpu", "torch": torch.__version__, "opencv": cv2.__version__,
                       "pillow": PIL.__version__, "onnxruntime": onnxruntime.__version__,
                       "numpy": runtime["numpy"]}
    row, config = {"image_id": "a", "boxes": [[0, 0, 4, 4]]}, Config()
    key = content_key(row, b"img", None, config, {"clean": "exemplar:1"}, runtime)
    assert key == content_key(row, b"img", None, config, {"clean": "exemplar:1"}, dict(runtime))
    for change in ({"device": "cuda"}, {"torch": "2.14.1"}, {"opencv": "4.8.0"}, {"pillow": "10.1.0"},
                   {"onnxruntime": "1.20.0"}):
        assert content_key(row, b"img", None, config, {"clean": "exemplar:1"}, {**runtime, **change}) != key, change


def test_config_syntax_errors_and_wrong_release_paths_are_usage_errors(tmp_path, photo_folder, capsys):
    path = manifest(photo_folder, [{"image_id": "a", "image_uri": "coffee.png"}])
    broken = tmp_path / "broken.yaml"
    broken.write_text("engines: {object: [unclosed\n")
    assert main(["run", path, "--output", str(tmp_path / "out"), "--config", str(broken)]) == EXIT_USAGE
    assert main(["validate", str(tmp_path), "--config", str(broken)]) == EXIT_USAGE
    # A path that holds no release is a mistake of the caller's, not a release that failed (1).
    assert main(["validate", str(tmp_path / "nothing-here")]) == EXIT_USAGE
    assert "is not a release" in capsys.readouterr().err


def test_a_store_that_does_not_answer_is_not_a_bad_manifest(tmp_path, monkeypatch):
    import fsspec

    import tasks.uris
    from data_contracts.manifest import load_manifest
    from tasks.uris import TransientStorageError

    def reset(*args, **kwargs):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(tasks.uris, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(fsspec, "open", reset)
    with pytest.raises(TransientStorageError, match="after 3 attempts"):
        load_manifest(str(tmp_path / "manifest.parquet"))


def test_a_web_root_follows_no_redirect_out_of_it(tmp_path):
    from tasks.uris import RowError, read_bytes, resolve

    server = CountingServer(b"secret")
    try:
        uri = resolve(f"{server.url}/img/redirect", str(tmp_path), (f"{server.url}/img",))
        with contextlib.suppress(RowError):
            assert read_bytes(uri) != b"secret"
        assert server.requests and "/secret.png" not in server.requests
    finally:
        server.close()


def test_cache_keys_follow_the_detectors_and_the_text_check(tmp_path, photo_folder, monkeypatch):
    """A new detector version or text check changes masks and verdicts: finished work must not be reused."""
    import tasks.measure
    from tasks.detect.text import TextDetector
    from tasks.partition import edit_row
    from tasks.plan import Job

    job = Job(str(photo_folder / "m.parquet"), str(photo_folder), str(tmp_path / "out" / "releases" / "r"),
              str(tmp_path / "out" / ".work" / "r"), Config(), None)
    row = {"image_id": "a", "_row": 0, "image_uri": "coffee.png", "removal": "text", "detect": ["text"]}
    first = edit_row(row, job)["content_key"]
    assert edit_row(row, job)["content_key"] == first
    monkeypatch.setattr(TextDetector, "version", TextDetector.version + "-next")
    second = edit_row(row, job)["content_key"]
    monkeypatch.setattr(tasks.partition, "TEXT_CHECK_VERSION", tasks.measure.TEXT_CHECK_VERSION + "-next")
    assert len({first, second, edit_row(row, job)["content_key"]}) == 3


@pytest.mark.usefixtures("prefect_harness")
def test_a_cache_that_cannot_be_written_costs_the_reuse_not_the_row(tmp_path, photo_folder):
    """A full disk under .cache/: the rows are published all the same."""
    rows = [{"image_id": f"r{k}", "image_uri": "coffee.png", "boxes": [[40.0 + 9 * k, 40.0, 90.0 + 9 * k, 90.0]]}
            for k in range(2)]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".cache").write_text("a file where the cache folder should be")
    summary = sanitize(manifest=manifest(photo_folder, rows), output=str(tmp_path / "out"), config=LENIENT_GATE,
                       release_id="r")
    assert summary["counts"]["published"] == 2 and summary["counts"]["quarantined"] == 0
    release = tmp_path / "out" / "releases" / "r"
    assert sorted(p.name for p in (release / "images").iterdir() if p.suffix == ".png") == ["r0.png", "r1.png"]
