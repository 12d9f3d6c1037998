import numpy as np
import pytest
from helpers import edit_context
from skimage import data as photos

from tasks.clean import composite
from tasks.clean.blur import block_mosaic
from tasks.config import Config
from tasks.registry import get_stage


@pytest.fixture
def hole():
    mask = np.zeros((512, 512), bool)
    mask[200:260, 300:380] = True
    return mask


def test_telea_fills_the_hole_from_its_surroundings(hole):
    config = Config()
    truth = photos.astronaut()
    damaged = truth.copy()
    damaged[hole] = (0, 255, 0)
    filled = composite(damaged, get_stage("clean", "telea", config)(damaged, hole, edit_context(config)), hole)
    assert (filled[~hole] == damaged[~hole]).all()
    # No trace of the green the hole held, and the fill is close to the photo's own colours.
    assert np.abs(filled[hole].astype(int) - truth[hole]).mean() < 40
    assert np.abs(damaged[hole].astype(int) - truth[hole]).mean() > 80


def test_engines_are_built_once_per_worker():
    config = Config()
    assert get_stage("clean", "telea", config) is get_stage("clean", "telea", config)


def test_blur_destroys_detail_below_the_block_size(hole):
    """The blurred region is a function of block means only: shuffling pixels inside each block
    (which keeps the means, destroys the content) must give the same output."""
    config = Config()
    engine = get_stage("clean", "blur", config)
    image = photos.astronaut()
    out = engine(image, hole, edit_context(config, "blur"))
    block = max(config.blur.min_block, int(np.ceil(80 / config.blur.blocks_across)))
    shuffled = image.copy()
    rng = np.random.default_rng(0)
    for y in range(200, 260, block):
        for x in range(300, 380, block):
            tile = shuffled[y:min(y + block, 260), x:min(x + block, 380)]
            flat = tile.reshape(-1, 3)
            tile[...] = flat[rng.permutation(len(flat))].reshape(tile.shape)
    assert not np.array_equal(shuffled, image)
    np.testing.assert_array_equal(engine(shuffled, hole, edit_context(config, "blur"))[hole], out[hole])


def test_blur_leaves_little_of_the_original_high_frequencies(hole):
    import cv2

    config = Config()
    image = photos.astronaut()
    out = composite(image, get_stage("clean", "blur", config)(image, hole, edit_context(config, "blur")), hole)
    inside = np.zeros_like(hole)
    inside[203:257, 303:377] = True  # away from the region's border, where the blur meets the photo
    lap = lambda a: cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)[inside].std()
    assert lap(out) < 0.1 * lap(image)
    assert (out[~hole] == image[~hole]).all()


def test_block_mosaic_means():
    region = np.arange(30, dtype=np.float64).reshape(5, 6)
    mosaic = block_mosaic(region, 4)
    assert mosaic[0, 0] == region[0:4, 0:4].mean() and mosaic[4, 5] == region[4:5, 4:6].mean()
