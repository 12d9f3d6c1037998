"""One row end to end without Prefect: every bad input ends quarantined with a clear reason."""

import io
import struct
import zlib

import numpy as np
import pytest
from helpers import save
from PIL import Image
from skimage import data as photos

from tasks.config import Config
from tasks.partition import edit_row, output_name, process_partition
from tasks.uris import write_parquet


def row(image_id="r", **fields):
    return {"image_id": image_id, "_row": 0, **fields}


@pytest.fixture
def photo_job(make_job, tmp_path):
    job = make_job()
    save(tmp_path / "data" / "img.png", photos.astronaut())
    return job


def test_a_removal_changes_only_the_mask(photo_job, tmp_path):
    record = edit_row(row(image_uri="img.png", boxes=[[100, 100, 140, 150]]), photo_job)
    assert record["status"] == "published", record.get("reason")
    out = np.asarray(Image.open(tmp_path / "out" / "releases" / "r1" / record["output_uri"]))
    mask = np.zeros((512, 512), bool)
    mask[100:150, 100:140] = True
    original = photos.astronaut()
    assert (out[~mask] == original[~mask]).all()
    assert (out[mask] != original[mask]).any()
    assert record["outside_changed"] == 0 and record["engine"] == "exemplar"
    assert record["mask_fraction"] == pytest.approx(mask.mean())


def test_an_empty_mask_publishes_the_file_unchanged_and_flags_it(photo_job, tmp_path):
    record = edit_row(row(image_uri="img.png"), photo_job)
    assert record["status"] == "published" and record["flags"] == ["empty_mask"]
    published = (tmp_path / "out" / "releases" / "r1" / record["output_uri"]).read_bytes()
    assert published == (tmp_path / "data" / "img.png").read_bytes()


def test_same_input_gives_the_same_bytes(photo_job):
    first = edit_row(row(image_uri="img.png", boxes=[[10, 10, 60, 60]]), photo_job)
    second = edit_row(row(image_uri="img.png", boxes=[[10, 10, 60, 60]]), photo_job)
    assert first["sha256"] == second["sha256"]


def _bomb() -> bytes:
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"image_uri": "missing.png"}, "read: image not found"),
        ({"image_uri": "truncated.jpg"}, "read: image is unreadable or truncated"),
        ({"image_uri": "bomb.png"}, "read: image is 12000x12000 = 144.0 MP, over the 100 MP limit"),
        ({"image_uri": "grey16.png"}, "read: 16-bit"),
        ({"image_uri": "cmyk.jpg"}, "read: CMYK images are not supported"),
        ({"image_uri": "../outside.png"}, "read: relative URI '../outside.png' escapes the manifest's folder"),
        ({"image_uri": "img.png", "mask_uri": "small_mask.png"}, "find: mask is 10x10 but the image is 512x512"),
        ({"image_uri": "img.png", "mask_uri": "nomask.png"}, "find: mask not found"),
        ({"image_uri": "img.png", "boxes": [[0, 0, 512, 512]]}, "find: mask covers 100% of the image"),
        ({"image_uri": "img.png", "boxes": [[600, 600, 700, 700]]}, "find: box 0 [600, 600, 700, 700] lies outside"),
        ({"image_uri": "img.png", "detect": ["plates"]}, "find: detector(s) ['plates'] requested but not available"),
        ({"image_uri": "img.png", "removal": "logo"}, "check: removal must be one of"),
        ({"image_uri": None}, "check: image_uri is empty"),
    ],
)
def test_bad_input_is_quarantined_with_its_reason(photo_job, tmp_path, fields, reason):
    data = tmp_path / "data"
    jpeg = io.BytesIO()
    Image.fromarray(photos.coffee()).save(jpeg, format="JPEG")
    (data / "truncated.jpg").write_bytes(jpeg.getvalue()[:5000])
    (data / "bomb.png").write_bytes(_bomb())
    save(data / "grey16.png", photos.camera().astype(np.uint16) * 257)
    Image.fromarray(photos.coffee()).convert("CMYK").save(data / "cmyk.jpg")
    save(tmp_path / "outside.png", photos.camera())
    save(data / "small_mask.png", np.full((10, 10), 255, np.uint8))

    record = edit_row(row(**fields), photo_job)
    assert record["status"] == "quarantined"
    assert record["reason"].startswith(reason), record["reason"]


def test_an_engine_crash_costs_one_row_not_the_run(photo_job, monkeypatch):
    from tasks.clean.exemplar import Exemplar

    def broken(self, image, mask, context):
        raise ZeroDivisionError("engine bug")

    monkeypatch.setattr(Exemplar, "__call__", broken)
    record = edit_row(row(image_uri="img.png", boxes=[[1, 1, 9, 9]]), photo_job)
    assert record["status"] == "quarantined"
    assert record["reason"] == "clean: internal error ZeroDivisionError: engine bug"


def test_output_names_are_safe_and_unique():
    assert output_name("cat-01", ".png") == "images/cat-01.png"
    a, b = output_name("a b", ".jpg"), output_name("a/b", ".jpg")
    assert a != b and "/" not in a.removeprefix("images/") and a.startswith("images/a_b~")
    assert output_name("../../etc/passwd", ".png").startswith("images/etc_passwd~")
    # An id crafted to look like another id's cleaned name cannot take its file.
    crafted = a.removeprefix("images/").removesuffix(".jpg")
    assert output_name(crafted, ".jpg") != a
    assert output_name("x" * 121, ".png") != output_name("x" * 122, ".png")


def test_process_partition_writes_one_record_per_row(photo_job, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = tmp_path / "part-00000.parquet"
    write_parquet(str(part), pa.Table.from_pylist([
        {"image_id": "ok", "image_uri": "img.png", "_row": 0},
        {"image_id": "gone", "image_uri": "nope.png", "_row": 1},
    ]))
    records = pq.read_table(process_partition(str(part), photo_job)).to_pylist()
    assert [(r["image_id"], r["status"]) for r in records] == [("ok", "published"), ("gone", "quarantined")]


def test_rows_cleaned_together_default_to_more_on_cuda():
    """batch_images 0: 16 rows where torch runs on CUDA (exemplar and lama batch their crops
    there), 4 on the CPU; a number given is used as it is."""
    assert Config(device="cpu").rows_per_batch() == 4
    assert Config(batch_images=7).rows_per_batch() == 7
    assert Config().rows_per_batch("cuda") == 16
    assert Config(batch_images=2).rows_per_batch("cuda") == 2


def _photo_rows(tmp_path, names):
    rows = [{"image_id": name, "_row": k, "image_uri": f"{name}.png", "boxes": [[200, 150, 251, 221]]}
            for k, name in enumerate(names)]
    for name in names:
        save(tmp_path / "data" / f"{name}.png", getattr(photos, name)())
    rows.append({"image_id": "broken", "_row": len(names), "image_uri": "missing.png", "boxes": [[1, 1, 9, 9]]})
    part = tmp_path / "part-00000.parquet"
    import pyarrow as pa

    write_parquet(str(part), pa.Table.from_pylist(rows))
    return str(part)


def test_the_rows_of_a_group_are_clarified_together(make_job, tmp_path, monkeypatch):
    """Where the clarifier shares batches across images (regrain on CUDA; here on the CPU with a
    batch of 8), a group's rows are all cleaned, then clarified in one `run_many` call, with
    the bytes each row gets alone; the unreadable row is quarantined and the others go on. Where
    it does not (the CPU by default), each row is cleaned and clarified in turn."""
    import pyarrow.parquet as pq

    from tasks.clarify.regrain import Regrain

    partition = _photo_rows(tmp_path, ["astronaut", "coffee", "chelsea"])
    calls = []
    run_many = Regrain.run_many
    monkeypatch.setattr(Regrain, "run_many",
                        lambda self, items, **kwargs: (calls.append(len(items)), run_many(self, items, **kwargs))[1])

    def run(batch_images, cpu_batch):
        monkeypatch.setattr(Regrain, "cpu_batch", cpu_batch)
        calls.clear()
        records = pq.read_table(process_partition(partition, make_job(batch_images=batch_images))).to_pylist()
        return records, list(calls)

    together, calls_together = run(8, cpu_batch=8)
    assert calls_together == [3]
    assert [r["status"] for r in together] == ["published"] * 3 + ["quarantined"]
    assert all(r["clarify"] == "regrain" and r["outside_changed"] == 0 for r in together[:3])
    for batch_images, cpu_batch in ((1, 8), (8, 1)):
        alone, calls_alone = run(batch_images, cpu_batch)
        assert calls_alone == [1, 1, 1]
        assert [r["sha256"] for r in alone] == [r["sha256"] for r in together]


def test_a_failed_clarify_batch_is_redone_row_by_row(make_job, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from tasks.clarify.regrain import Regrain

    partition = _photo_rows(tmp_path, ["astronaut", "coffee"])
    run_many = Regrain.run_many

    def fails_on_batches(self, items, **kwargs):
        if len(items) > 1:
            raise RuntimeError("CUDA out of memory")
        return run_many(self, items, **kwargs)

    monkeypatch.setattr(Regrain, "run_many", fails_on_batches)
    monkeypatch.setattr(Regrain, "cpu_batch", 8)
    records = pq.read_table(process_partition(partition, make_job(batch_images=8))).to_pylist()
    assert [r["status"] for r in records] == ["published", "published", "quarantined"]
    assert [r["clarify"] for r in records[:2]] == ["regrain", "regrain"]
