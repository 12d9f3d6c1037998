"""A published release loads with the real Hugging Face `datasets` and `webdataset` libraries (the
`[datasets]` extra), with the rows, bytes and columns of its `manifest.parquet`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

# Nothing may come from a hub: the release is read from disk.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.sanitize import sanitize
from tasks.config import Config
from tasks.export import write_webdataset_shards

pytestmark = pytest.mark.usefixtures("prefect_harness")

PASS_THROUGH = ("partition", "caption", "split", "labels")
SHARDS = {"output": {"shards": "webdataset", "shard_max_rows": 3}}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def release(demo_manifest, tmp_path_factory):
    """The demo's 8 rows plus one whose file is missing (quarantined), published with 3-row shards."""
    folder = tmp_path_factory.mktemp("export")
    data = folder / "data"
    shutil.copytree(os.path.dirname(demo_manifest), data)
    table = pq.read_table(data / "manifest.parquet")
    rows = [*table.to_pylist(), {**table.to_pylist()[0], "image_id": "gone", "image_uri": "images/gone.png"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), data / "manifest.parquet")
    sanitize(manifest=str(data / "manifest.parquet"), output=str(folder / "out"), config=SHARDS, release_id="ex-1")
    return folder / "out", folder / "out" / "releases" / "ex-1"


def published_rows(release) -> list[dict]:
    return pq.read_table(release / "manifest.parquet").to_pylist()


def test_the_release_has_a_quarantined_row_to_leave_out(release):
    _, path = release
    quarantined = pq.read_table(path / "quarantine.parquet").column("image_id").to_pylist()
    assert quarantined == ["gone"] and len(published_rows(path)) == 8


def test_hugging_face_datasets_loads_the_release_in_one_line(release, tmp_path):
    import datasets

    _, path = release
    dataset = datasets.load_dataset(str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))

    assert isinstance(dataset.features["image"], datasets.Image)
    expected = {r["image_id"]: r for r in published_rows(path)}
    assert dataset.num_rows == len(expected)
    assert sorted(dataset["image_id"]) == sorted(expected) and "gone" not in dataset["image_id"]
    assert dataset.features["labels"] == datasets.List(datasets.Value("string"))

    # Each row's image is the file manifest.parquet names, byte for byte.
    raw = dataset.cast_column("image", datasets.Image(decode=False))
    for row in raw:
        published = expected[row["image_id"]]
        data = row["image"]["bytes"] or Path(row["image"]["path"]).read_bytes()
        assert sha256(data) == published["sha256"], row["image_id"]
        assert os.path.samefile(row["image"]["path"], path / published["output_uri"])
        for column in (*PASS_THROUGH, "sha256", "width", "height", "action"):
            assert row[column] == published[column], (row["image_id"], column)
    # Decoded, it is the picture.
    first = dataset[0]
    assert first["image"].size == (expected[first["image_id"]]["width"], expected[first["image_id"]]["height"])


def read_webdataset(path) -> list[dict]:
    import webdataset

    index = json.loads((path / "webdataset" / "index.json").read_text())
    urls = [str(path / shard["path"]) for shard in index["shards"]]
    return list(webdataset.WebDataset(urls, shardshuffle=False, empty_check=False))


def test_webdataset_shards_hold_the_same_rows_and_bytes(release):
    _, path = release
    published = published_rows(path)
    index = json.loads((path / "webdataset" / "index.json").read_text())
    assert [s["rows"] for s in index["shards"]] == [3, 3, 2] and index["rows"] == 8
    assert sorted(p.name for p in (path / "webdataset").glob("*.tar")) == [
        "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]

    samples = read_webdataset(path)
    assert len(samples) == len(published)
    for sample, row in zip(samples, published):  # manifest order
        record = json.loads(sample["json"])
        assert record["image_id"] == row["image_id"]
        extension = os.path.splitext(row["output_uri"])[1].lstrip(".")
        assert sha256(sample[extension]) == row["sha256"] == record["sha256"], row["image_id"]
        for column in PASS_THROUGH:
            assert record[column] == row[column], (row["image_id"], column)
    assert "gone" not in {json.loads(s["json"])["image_id"] for s in samples}


def test_shards_respect_the_byte_limit(release, tmp_path):
    _, path = release
    published = pq.read_table(path / "manifest.parquet")
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    shutil.rmtree(copy / "webdataset")
    sizes = sorted(len((path / r["output_uri"]).read_bytes()) for r in published.to_pylist())
    limit = sum(sizes) // 4  # the images alone need more than 3 shards of this size
    shards = write_webdataset_shards(str(copy), published, max_rows=1000, max_bytes=limit)
    assert len(shards) >= 4 and sum(s["rows"] for s in shards) == 8 and any(s["rows"] > 1 for s in shards)
    for shard in shards:
        size = (copy / shard["path"]).stat().st_size
        assert size == shard["bytes"]
        assert size <= limit or shard["rows"] == 1, shard  # only a row too large alone may pass the limit
    assert len(read_webdataset(copy)) == 8


def test_a_rerun_writes_the_same_shard_bytes_and_they_stay_out_of_the_pixel_digest(release):
    output, path = release
    manifest = json.loads((path / "release.json").read_text())["input_manifest"]["uri"]
    # Another byte limit (the row limit still decides): packaging settings do not invalidate finished work.
    config = {"output": {**SHARDS["output"], "shard_max_bytes": 2**27}}
    summary = sanitize(manifest=manifest, output=str(output), config=config, release_id="ex-2")
    assert summary["counts"]["reused"] == 8 and summary["config_sha256"] != Config.model_validate(SHARDS).digest()
    rerun = output / "releases" / "ex-2"
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
        assert (rerun / "webdataset" / name).read_bytes() == (path / "webdataset" / name).read_bytes()
    assert (rerun / "images" / "metadata.parquet").read_bytes() == (path / "images" / "metadata.parquet").read_bytes()

    plain, sharded = Config(), Config.model_validate(SHARDS)
    assert plain.pixel_digest() == sharded.pixel_digest() and plain.digest() != sharded.digest()


def test_shards_take_long_ids_and_columns_json_has_no_type_for(tmp_path):
    """A 256-character id overflows a tar name unless the key is cut; timestamps, dates, decimals,
    bytes and infinities in pass-through columns must not stop the release."""
    import datetime as dt
    import decimal
    import tarfile

    from tasks.export import write_webdataset_shards

    ids = ["x" * 256, "shop 12/front view " + "y" * 200]
    (tmp_path / "images").mkdir()
    for k in range(2):
        (tmp_path / "images" / f"{k}.png").write_bytes(b"png bytes %d" % k)
    published = pa.table({
        "image_id": ids, "output_uri": ["images/0.png", "images/1.png"],
        "taken": pa.array([dt.datetime(2024, 1, 1, 12), None], pa.timestamp("us")),
        "day": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 3)]),
        "price": pa.array([decimal.Decimal("9.99"), decimal.Decimal("0.10")], pa.decimal128(5, 2)),
        "blob": [b"\x00\x01", b""], "score": [float("inf"), 1.0],
    })
    shards = write_webdataset_shards(str(tmp_path), published, max_rows=10, max_bytes=1 << 20)
    with tarfile.open(tmp_path / shards[0]["path"]) as tar:
        names = tar.getnames()
        record = json.loads(tar.extractfile(next(n for n in names if n.endswith(".json"))).read())
    assert len(names) == 4 and all(len(n) <= 100 for n in names)
    assert record["image_id"] == ids[0] and record["taken"] == "2024-01-01T12:00:00" and record["day"] == "2024-01-02"
    assert record["price"] == "9.99" and record["blob"] == "AAE=" and record["score"] is None
