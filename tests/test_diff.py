"""`clean-clarify diff A B` on two real releases: the demo, then a changed copy of its manifest
(one row removed, one photo edited, one row added, one row whose file is gone)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import LENIENT_GATE
from PIL import Image

from flows.cli import main
from flows.sanitize import sanitize
from tasks.diff import diff_releases

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def two_releases(demo_manifest, tmp_path_factory):
    folder = tmp_path_factory.mktemp("diff")
    data = folder / "data"
    shutil.copytree(os.path.dirname(demo_manifest), data)
    output = folder / "out"
    sanitize(manifest=str(data / "manifest.parquet"), output=str(output), config=LENIENT_GATE, release_id="a")

    table = pq.read_table(data / "manifest.parquet")
    rows = [r for r in table.to_pylist() if r["image_id"] != "gravel-object"]  # removed
    for row in rows:
        if row["image_id"] == "brick-object":
            row["image_uri"] = "images/no-such-file.png"  # quarantined: the file is gone
    camera = next(r for r in rows if r["image_id"] == "camera-clean")
    shutil.copy(data / camera["image_uri"], data / "images" / "camera-copy.png")
    rows.append({**camera, "image_id": "camera-copy", "image_uri": "images/camera-copy.png"})  # added
    # The photo behind camera-clean is edited in place: same id, different published bytes.
    pixels = np.array(Image.open(data / camera["image_uri"]))
    pixels[:40, :40] = 255 - pixels[:40, :40]
    Image.fromarray(pixels).save(data / camera["image_uri"])
    changed = data / "manifest-b.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), changed)
    sanitize(manifest=str(changed), output=str(output), config=LENIENT_GATE, release_id="b")
    return output / "releases" / "a", output / "releases" / "b"


def test_diff_names_each_kind_of_change(two_releases):
    a, b = two_releases
    diff = diff_releases(str(a), str(b))
    assert [r["image_id"] for r in diff["added"]] == ["camera-copy"] and diff["added"][0]["was"] == "absent"
    assert [r["image_id"] for r in diff["removed"]] == ["gravel-object"]
    assert [r["image_id"] for r in diff["changed"]] == ["camera-clean"]
    (changed,) = diff["changed"]
    published_b = {r["image_id"]: r["sha256"] for r in pq.read_table(b / "manifest.parquet").to_pylist()}
    published_a = {r["image_id"]: r["sha256"] for r in pq.read_table(a / "manifest.parquet").to_pylist()}
    assert (changed["sha256_a"], changed["sha256_b"]) == (published_a["camera-clean"], published_b["camera-clean"])
    (quarantined,) = diff["newly_quarantined"]
    assert quarantined["image_id"] == "brick-object" and quarantined["was"] == "published"
    assert quarantined["reason"].startswith("read: image not found")
    assert diff["unchanged"] == 8 - 3 == len(published_a.keys() & published_b.keys()) - 1

    # Nothing changed between a release and itself.
    same = diff_releases(str(a), str(a))
    assert not any(same[k] for k in ("added", "removed", "changed", "newly_quarantined")) and same["unchanged"] == 8


def test_the_cli_prints_a_table_and_json(two_releases, capsys):
    a, b = two_releases
    assert main(["diff", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert any(line.split()[:2] == ["added", "camera-copy"] for line in lines)
    assert any(line.split()[:2] == ["removed", "gravel-object"] for line in lines)
    assert any(line.split()[:2] == ["changed", "camera-clean"] and "→" in line for line in lines)
    assert any(line.startswith("newly quarantined") and "brick-object" in line and "not found" in line for line in lines)
    assert lines[-1] == "1 added, 1 removed, 1 changed, 1 newly quarantined, 5 unchanged"

    assert main(["diff", str(a), str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == diff_releases(str(a), str(b))


def test_a_path_that_is_not_a_release_exits_2(two_releases, tmp_path, capsys):
    a, _ = two_releases
    assert main(["diff", str(a), str(tmp_path)]) == 2
    assert "is not a release: manifest.parquet is missing" in capsys.readouterr().err
