import cv2
import numpy as np
import pytest
import torch
from helpers import edit_context
from skimage import data as photos

from tasks.clean import EditContext, composite
from tasks.clean.exemplar import Exemplar
from tasks.clean.telea import Telea
from tasks.config import Config
from tasks.settings import ExemplarConfig


def laplacian_std(image, region):
    return cv2.Laplacian(image.astype(np.float32), cv2.CV_32F, ksize=1)[region].std()


@pytest.fixture(scope="module")
def engine():
    return Exemplar.from_config(Config())


def blob(shape, centre, axes):
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 20, 0, 360, 1, -1)
    return mask.astype(bool)


@pytest.mark.parametrize("name", ["brick", "gravel"])
def test_textured_fill_keeps_its_detail_where_telea_smudges(engine, name):
    truth = getattr(photos, name)()
    hole = blob(truth.shape, (260, 240), (45, 30))
    damaged = truth.copy()
    damaged[hole] = 255  # the object to remove
    ours = composite(damaged, engine(damaged, hole, edit_context()), hole)
    telea = composite(damaged, Telea()(damaged, hole, edit_context()), hole)
    detail = laplacian_std(truth, hole)
    assert 0.75 <= laplacian_std(ours, hole) / detail <= 1.33
    assert laplacian_std(telea, hole) / detail < 0.5
    # Real texture, not a copy of the object nor a flat grey.
    assert abs(float(ours[hole].mean()) - float(truth[hole].mean())) < 20


def test_a_straight_line_continues_through_the_hole(engine):
    """A dark line drawn across a real photo (grass) and cut by the hole comes out continued."""
    image = photos.grass().copy()
    cv2.line(image, (0, 150), (511, 355), 20, 5)  # slope 0.4, 5 px wide
    hole = np.zeros(image.shape, bool)
    hole[200:290, 220:300] = True
    filled = composite(image, engine(image, hole, edit_context()), hole)
    ys, xs = np.nonzero(hole)
    offset = np.abs(ys - (150 + xs * 205 / 511))  # distance (rows) to the line's centre
    on_line, off_line = filled[ys, xs][offset <= 1.5], filled[ys, xs][offset >= 8]
    assert on_line.mean() < off_line.mean() - 40
    assert (on_line < 60).mean() > 0.8


def test_same_seed_same_bytes_other_seed_may_differ(engine):
    image = photos.brick()
    hole = blob(image.shape, (200, 300), (40, 25))
    first = engine(image, hole, edit_context(seed=7))
    np.testing.assert_array_equal(first, engine(image, hole, edit_context(seed=7)))
    other = engine(image, hole, edit_context(seed=8))
    assert other.shape == first.shape and other.dtype == first.dtype
    assert not np.array_equal(first[hole], other[hole])


@pytest.mark.parametrize("image", [photos.astronaut(), photos.camera()], ids=["rgb", "grey"])
def test_shapes_dtypes_and_untouched_outside(engine, image):
    hole = blob(image.shape[:2], (300, 200), (35, 20)) | blob(image.shape[:2], (100, 400), (15, 25))
    damaged = image.copy()
    damaged[hole] = 0
    out = engine(damaged, hole, edit_context())
    assert out.shape == image.shape and out.dtype == np.uint8
    filled = composite(damaged, out, hole)
    assert (filled[~hole] == damaged[~hole]).all()
    # Both holes are filled from the photo, not left black.
    assert filled[hole].mean() > 40


def test_a_hole_on_the_border_is_filled(engine):
    image = photos.coffee()
    hole = np.zeros(image.shape[:2], bool)
    hole[:50, 200:280] = True  # touches the top edge
    hole[330:, :60] = True  # the bottom-left corner
    damaged = image.copy()
    damaged[hole] = (0, 255, 0)
    filled = composite(damaged, engine(damaged, hole, edit_context()), hole)
    assert not (filled[hole] == (0, 255, 0)).all(-1).any()
    assert np.abs(filled[hole].astype(int) - image[hole]).mean() < 40


def test_a_tiny_hole_and_an_empty_mask(engine):
    image = photos.chelsea()
    hole = np.zeros(image.shape[:2], bool)
    assert np.array_equal(engine(image, hole, edit_context()), image)
    hole[100:104, 200:203] = True
    out = composite(image, engine(image, hole, edit_context()), hole)
    assert np.abs(out[hole].astype(int) - image[hole]).mean() < 40


def test_the_engine_is_built_from_its_own_config_section():
    assert Exemplar(ExemplarConfig(patch=5), torch.device("cpu")).params.patch == 5
    engine = Exemplar.from_config(Config(device="cpu", exemplar={"patch": 5}))
    assert engine.params.patch == 5 and engine.device.type == "cpu"
    assert Exemplar.from_config(Config()).params == ExemplarConfig()


def test_a_large_hole_is_laid_out_no_coarser_than_an_eighth():
    from tasks.clean.exemplar import _levels

    hole = np.zeros((1100, 1100), bool)
    hole[250:850, 250:850] = True  # a 600 px object, as listing photos carry (3-5% of 4 MP)
    assert _levels(hole, ExemplarConfig()) == 3
    assert _levels(hole, ExemplarConfig(max_levels=8)) == 4  # the hole's size alone would go deeper
    assert _levels(hole[200:400, 200:400], ExemplarConfig()) == 2  # a small hole stops on its own


def test_crops_of_several_images_batched_fill_as_they_do_alone(monkeypatch):
    """CUDA fills the crops of many images in one batch, padded to one size; run here on the CPU
    with the same code. Each image's fill must be its own: the same as alone up to float rounding
    (the batch's convolutions run on another shape), also for a hole that reaches the crop's edge."""
    import tasks.clean.exemplar as exemplar

    images = [photos.coffee(), photos.rocket(), photos.astronaut()[:300, :420], photos.chelsea(), photos.camera()]
    masks = []
    for image, centre in zip(images, [(200, 150), (300, 380), (210, 285), (250, 170), (300, 200)]):
        mask = blob(image.shape[:2], centre, (45, 30))
        masks.append(mask)
    masks[2][240:, 180:240] = True  # reaches the photo's bottom edge, so the crop's edge too
    items = [(image, mask, EditContext(f"img{k}", "object", "remove", k, Config())) for k, (image, mask) in
             enumerate(zip(images, masks))]
    alone = Exemplar.from_config(Config(device="cpu"))
    batched = Exemplar(ExemplarConfig(), torch.device("cpu"), cpu_batch=8)
    assert batched.shares_batches and not alone.shares_batches
    sizes = []
    fill_crops = exemplar.fill_crops
    monkeypatch.setattr(exemplar, "fill_crops", lambda crops, params: (sizes.append(len(crops)), fill_crops(crops, params))[1])
    together = batched.run_many(items)
    assert max(sizes) >= 3, sizes  # the crops did share a batch
    for (image, mask, ctx), out in zip(items, together):
        own = alone(image, mask, ctx)
        assert np.array_equal(out[~mask], image[~mask])
        change = np.abs(out.astype(int) - own.astype(int))[mask]
        assert (change == 0).mean() >= 0.97 and change.max() <= 12, ((change > 0).mean(), change.max())
        assert laplacian_std(out, mask) > 0.5 * laplacian_std(image, ~mask)  # filled with texture, not left blank


def test_on_the_cpu_a_batch_of_images_gives_each_its_own_bytes():
    engine = Exemplar.from_config(Config(device="cpu"))
    images = [photos.coffee(), photos.camera(), photos.chelsea()]
    items = [(image, blob(image.shape[:2], (200, 150), (40, 28)), edit_context(seed=seed)) for seed, image in enumerate(images)]
    together = engine.run_many(items)
    for item, out in zip(items, together):
        assert np.array_equal(out, engine(*item))
