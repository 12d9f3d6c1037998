"""The `lama` engine with a tiny TorchScript model the tests build, keeping big-lama.pt's contract."""

import hashlib

import fsspec
import numpy as np
import pytest
import torch
from helpers import LENIENT_GATE, edit_context, ellipse, save
from skimage import data as photos

from tasks.clean import composite
from tasks.clean.lama import Lama
from tasks.config import Config
from tasks.registry import get_stage
from tasks.weights import WeightsError


class TinyLama(torch.nn.Module):
    """big-lama.pt's contract: fills the hole with the known pixels' mean colour, shaded by a conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.shade = torch.nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if image.shape[2] % 8 != 0 or image.shape[3] % 8 != 0:
            raise RuntimeError("H and W must be multiples of 8")
        known = image * (1 - mask)
        mean = known.sum((2, 3), keepdim=True) / (1 - mask).sum((2, 3), keepdim=True).clamp(min=1)
        guess = known + mask * mean
        fill = mean + 0.1 * torch.tanh(self.shade(torch.cat([guess, mask], 1)))
        return known + mask * fill


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyLama()), buffer)
    return buffer.getvalue()


@pytest.fixture
def weights(tmp_path, model_bytes):
    """A fresh path per test, so each config (and its worker-wide engine) is new."""
    path = tmp_path / "tiny-lama.pt"
    path.write_bytes(model_bytes)
    return str(path), hashlib.sha256(model_bytes).hexdigest()


def lama_config(uri, sha, **lama) -> Config:
    return Config.model_validate({"engines": {"object": "lama"}, "lama": {"weights_uri": uri, "sha256": sha, **lama}})


def odd_photo() -> np.ndarray:
    return photos.astronaut()[100:401, 150:407]  # 301x257: every crop needs padding


def ellipse_hole(shape, centre=(120, 140), axes=(30, 22)) -> np.ndarray:
    return ellipse(shape, centre, axes)


def test_fills_the_hole_with_the_model_and_keeps_the_outside(weights):
    config = lama_config(*weights, margin=40)
    image = odd_photo()
    hole = ellipse_hole(image.shape)
    out = composite(image, Lama.from_config(config)(image, hole, edit_context(config, seed=0)), hole)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[~hole] == image[~hole]).all()
    # The tiny model paints the crop's known mean colour, shaded by at most ±10% (25.5 levels).
    rows, cols = np.nonzero(hole)
    window = np.zeros_like(hole)
    window[max(0, rows.min() - 40) : rows.max() + 41, max(0, cols.min() - 40) : cols.max() + 41] = True
    known_mean = image[window & ~hole].mean(axis=0)
    assert np.abs(out[hole] - known_mean).max() < 27
    assert np.abs(out[hole].astype(int) - image[hole]).mean() > 10


def test_the_object_inside_the_hole_never_reaches_the_model(weights):
    config = lama_config(*weights)
    engine = Lama.from_config(config)
    image = odd_photo()
    hole = ellipse_hole(image.shape)
    painted = image.copy()
    painted[hole] = (0, 255, 0)
    assert (engine(image, hole, edit_context(config, seed=0)) == engine(painted, hole, edit_context(config, seed=0))).all()


def test_same_input_gives_the_same_bytes(weights):
    config = lama_config(*weights)
    engine = Lama.from_config(config)
    image = odd_photo()
    hole = ellipse_hole(image.shape) | ellipse_hole(image.shape, centre=(60, 250), axes=(12, 20))
    first, second = engine(image, hole, edit_context(config, seed=0)), engine(image, hole, edit_context(config, seed=0))
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() == Lama.from_config(config)(image, hole, edit_context(config, seed=0)).tobytes()


def test_grey_images_are_filled_as_grey(weights):
    config = lama_config(*weights)
    image = photos.camera()[50:351, 60:317]  # 301x257
    hole = ellipse_hole(image.shape)
    out = composite(image, Lama.from_config(config)(image, hole, edit_context(config, seed=0)), hole)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[~hole] == image[~hole]).all()
    assert np.abs(out[hole].astype(int) - image[hole]).mean() > 5


def test_run_many_batches_across_images_and_gives_each_image_its_own_bytes(weights):
    config = lama_config(*weights, margin=32)
    engine = Lama.from_config(config)
    astronaut, cat = odd_photo(), photos.chelsea()[:301, :257]
    hole = ellipse_hole(astronaut.shape)
    alone = [engine(image, hole, edit_context(config, seed=0)) for image in (astronaut, cat)]

    batch_sizes = []
    model = engine.model
    engine.model = lambda image, mask: (batch_sizes.append(image.shape[0]), model(image, mask))[1]
    together = engine.run_many([(astronaut, hole, edit_context(config, seed=0)), (cat, hole, edit_context(config, seed=0))])
    assert batch_sizes == [2]  # one call for both images' crops
    assert [a.tobytes() for a in alone] == [t.tobytes() for t in together]


def test_a_wrong_hash_is_refused_naming_both_digests(weights):
    uri, sha = weights
    with pytest.raises(WeightsError) as refused:
        Lama.from_config(lama_config(uri, "0" * 64))
    assert uri in str(refused.value) and sha in str(refused.value) and "0" * 64 in str(refused.value)


def test_an_md5_in_place_of_the_sha256_is_refused_by_the_config():
    with pytest.raises(ValueError, match="not a sha256"):
        Config.model_validate({"lama": {"sha256": "e3aa4aaa15225a33ec84f9f4bc47e500"}})


def test_missing_weights_say_which_key_to_set():
    with pytest.raises(WeightsError, match=r"lama\.weights_uri"):
        Lama.from_config(Config.model_validate({"engines": {"object": "lama"}}))


def test_a_file_that_is_not_torchscript_is_refused(tmp_path):
    path = tmp_path / "state_dict.pt"
    torch.save(TinyLama().state_dict(), path)
    with pytest.raises(WeightsError, match="not a TorchScript module"):
        Lama.from_config(lama_config(str(path), None))


def test_weights_load_from_any_fsspec_url(model_bytes, tmp_path):
    memory = fsspec.filesystem("memory")
    path = f"/lama-test/{tmp_path.name}/big-lama.pt"
    memory.pipe_file(path, model_bytes)
    try:
        engine = Lama.from_config(lama_config(f"memory://{path}", hashlib.sha256(model_bytes).hexdigest()))
    finally:
        memory.rm(path)
    assert engine.version == f"1:{hashlib.sha256(model_bytes).hexdigest()}"


def test_the_model_loads_once_per_worker(weights, monkeypatch):
    loads = []
    load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: (loads.append(1), load(*args, **kwargs))[1])
    config = lama_config(*weights)
    assert get_stage("clean", "lama", config) is get_stage("clean", "lama", config)
    assert len(loads) == 1


def test_a_lama_row_through_the_pipeline(weights, make_job, tmp_path):
    from PIL import Image

    from tasks.partition import edit_row

    uri, sha = weights
    save(tmp_path / "data" / "img.png", photos.astronaut())
    job = make_job(engines={"object": "lama"}, lama={"weights_uri": uri, "sha256": sha}, **LENIENT_GATE)
    record = edit_row({"image_id": "a", "_row": 0, "image_uri": "img.png", "boxes": [[300, 300, 341, 371]]}, job)
    assert record["status"] == "published" and record["engine"] == "lama", record.get("reason")
    assert record["outside_changed"] == 0
    out = np.asarray(Image.open(tmp_path / "out" / "releases" / "r1" / record["output_uri"]))
    assert (out[300:371, 300:341] != photos.astronaut()[300:371, 300:341]).any()


def test_a_lama_row_without_weights_is_quarantined_with_the_fix(make_job, tmp_path):
    from tasks.partition import edit_row

    save(tmp_path / "data" / "img.png", photos.astronaut())
    job = make_job(engines={"object": "lama"})
    record = edit_row({"image_id": "a", "_row": 0, "image_uri": "img.png", "boxes": [[300, 300, 341, 371]]}, job)
    assert record["status"] == "quarantined" and "lama.weights_uri" in record["reason"]


def _partition(tmp_path, rows) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data" / "part-0.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _rows(tmp_path, count=3):
    rows = []
    for k, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"][:count]):
        save(tmp_path / "data" / f"{name}.png", getattr(photos, name)())
        rows.append({"image_id": name, "_row": k, "image_uri": f"{name}.png", "boxes": [[200, 150, 241, 221]]})
    rows.append({"image_id": "broken", "_row": count, "image_uri": "missing.png", "boxes": [[1, 1, 9, 9]]})
    return rows


def test_a_partition_fills_the_crops_of_its_images_in_one_batch(weights, make_job, tmp_path, monkeypatch):
    """batch_images rows are cleaned together: one run_many call for three images (the row that
    cannot be read is quarantined, the others go on), same bytes as one image at a time."""
    import pyarrow.parquet as pq

    from tasks.partition import process_partition

    uri, sha = weights
    partition = _partition(tmp_path, _rows(tmp_path))
    batches = []
    run_many = Lama.run_many
    monkeypatch.setattr(Lama, "run_many",
                        lambda self, items, **kwargs: (batches.append(len(items)), run_many(self, items, **kwargs))[1])

    def run(batch_images):
        job = make_job(engines={"object": "lama"}, lama={"weights_uri": uri, "sha256": sha}, batch_images=batch_images,
                       **LENIENT_GATE)
        batches.clear()
        records = pq.read_table(process_partition(partition, job)).to_pylist()
        return records, list(batches)

    together, calls = run(batch_images=8)
    assert calls == [3]
    assert [r["status"] for r in together] == ["published"] * 3 + ["quarantined"]
    assert together[3]["reason"].startswith("read:")
    alone, calls = run(batch_images=1)
    assert calls == [1, 1, 1]
    assert [r["sha256"] for r in alone] == [r["sha256"] for r in together]


def test_a_failed_batch_is_redone_row_by_row(weights, make_job, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from tasks.partition import process_partition

    uri, sha = weights
    partition = _partition(tmp_path, _rows(tmp_path, count=2))
    run_many = Lama.run_many

    def fails_on_batches(self, items, **kwargs):
        if len(items) > 1:
            raise RuntimeError("CUDA out of memory")
        return run_many(self, items, **kwargs)

    monkeypatch.setattr(Lama, "run_many", fails_on_batches)
    job = make_job(engines={"object": "lama"}, lama={"weights_uri": uri, "sha256": sha}, **LENIENT_GATE)
    records = pq.read_table(process_partition(partition, job)).to_pylist()
    assert [r["status"] for r in records] == ["published", "published", "quarantined"]


def test_a_partition_with_unusable_weights_fails_before_any_row(make_job, tmp_path):
    """A config problem is the run's, not each row's: the partition (and the flow) stop at once."""
    from tasks.partition import process_partition

    partition = _partition(tmp_path, _rows(tmp_path, count=1))
    job = make_job(engines={"object": "lama"})
    with pytest.raises(WeightsError, match=r"lama\.weights_uri"):
        process_partition(partition, job)
