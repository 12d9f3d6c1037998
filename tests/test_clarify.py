"""Re-graining on real photos: the fill gets the photo's own grain, and nothing else changes."""

import cv2
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from skimage import data as photos

from tasks.clarify import Regrain, get_clarifier, regrain_crop
from tasks.clean import EditContext
from tasks.config import Config
from tasks.measure import immerkaer_sigma, measure_edit

CPU = torch.device("cpu")


def ellipse(shape, centre, axes):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask > 0


def telea(image, mask):
    return cv2.inpaint(image, mask.astype(np.uint8), 5, cv2.INPAINT_TELEA)


@pytest.mark.parametrize("name", ["gravel", "grass"])
def test_regrain_turns_a_smudge_into_a_fill_with_the_photos_texture(name):
    truth = getattr(photos, name)()
    mask = ellipse(truth.shape, (256, 256), (45, 35))
    smudge = telea(truth, mask)
    before = measure_edit(truth, smudge, mask)
    after = measure_edit(truth, regrain_crop(smudge, mask, seed=1, feather=3.0, device=CPU), mask)
    assert before.texture_ratio < 0.35
    assert 0.75 <= after.texture_ratio <= 1.33
    assert 0.7 <= after.noise_ratio <= 1.4


def test_regrain_restores_texture_on_brick_without_doubling_its_noise():
    """Brick is mostly smooth faces cut by sharp mortar. Gaussian grain with the ring's texture
    energy was twice as noisy as the truth there; grain copied from the photo keeps the ratio of
    texture to noise that brick has, so the noise stays near the truth's."""
    truth = photos.brick()
    mask = ellipse(truth.shape, (256, 256), (45, 35))
    after = measure_edit(truth, regrain_crop(telea(truth, mask), mask, seed=1, feather=3.0, device=CPU), mask)
    assert 0.75 <= after.texture_ratio <= 1.33
    assert after.noise_ratio < 1.5


def test_only_pixels_inside_the_mask_change():
    image = photos.astronaut()
    mask = ellipse(image.shape, (380, 300), (40, 30))
    out = regrain_crop(telea(image, mask), mask, seed=3, feather=3.0, device=CPU)
    assert (out[~mask] == telea(image, mask)[~mask]).all()
    assert (out[mask] != telea(image, mask)[mask]).any()


def test_deterministic_per_seed():
    image = photos.coffee()
    mask = ellipse(image.shape, (300, 200), (50, 40))
    smudge = telea(image, mask)
    a = regrain_crop(smudge, mask, seed=7, feather=3.0, device=CPU)
    b = regrain_crop(smudge, mask, seed=7, feather=3.0, device=CPU)
    c = regrain_crop(smudge, mask, seed=8, feather=3.0, device=CPU)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_same_bytes_whatever_the_thread_count():
    """A laptop, a 2-thread Dask worker and a 16-core server must publish the same release: the
    re-grain's output may not depend on how many threads torch and OpenCV use. A hole large
    enough for the strided statistics, on the coffee photo."""
    image = photos.coffee()
    mask = ellipse(image.shape, (300, 200), (120, 90))
    smudge = telea(image, mask)
    outputs = []
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        for threads in (1, 4):
            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
            outputs.append(regrain_crop(smudge, mask, seed=7, feather=3.0, device=CPU))
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)
    assert np.array_equal(outputs[0], outputs[1])
    assert (outputs[0][mask] != smudge[mask]).any()


def test_fills_that_copy_the_cameras_grain_keep_it():
    """An exemplar or lama fill is the photo's own pixels: where it already has the camera's noise
    it is left alone, whatever its texture level (the hidden content's, which the surroundings do
    not know). A diffusion fill with the same levels is re-grained. Here: gravel whose hole keeps
    its fine grain but lost its mid-scale texture."""
    truth = photos.gravel()
    mask = ellipse(truth.shape, (256, 256), (60, 45))
    pixels = truth.astype(np.float64)
    fine_grain = pixels - cv2.GaussianBlur(pixels, (0, 0), 1.0)
    fill = np.clip(cv2.GaussianBlur(pixels, (0, 0), 3.0) + fine_grain, 0, 255).round().astype(np.uint8)
    fill = np.where(mask, fill, truth)
    levels = measure_edit(truth, fill, mask)
    assert levels.noise_ratio > 0.9 and levels.texture_ratio < 0.9

    def clarified(engine):
        config = Config()
        context = EditContext("gravel", "object", "remove", 1, config, engine=engine)
        return get_clarifier("regrain", config)(fill, mask, context)

    assert np.array_equal(clarified("exemplar"), fill)
    assert np.array_equal(clarified("lama"), fill)
    regrained = clarified("telea")
    assert not np.array_equal(regrained, fill)
    assert measure_edit(truth, regrained, mask).texture_ratio > levels.texture_ratio


def test_noise_level_follows_intensity():
    """A real photo, smoothed, with grain whose sigma grows with brightness (as a sensor's does):
    the grain added to a flat fill has the sigma of the fill's brightness, not an average."""
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(photos.camera(), (0, 0), 4).astype(np.float64)
    sigma = 1.0 + 0.04 * smooth  # 1 in the shadows, about 11 in the highlights
    noisy = np.clip(smooth + rng.normal(0, 1, smooth.shape) * sigma, 0, 255).astype(np.uint8)
    for centre in ((120, 60), (300, 400)):  # bright sky, dark coat
        mask = ellipse(noisy.shape, centre, (22, 22))
        flat = noisy.copy()
        flat[mask] = np.uint8(np.rint(smooth[mask].mean()))
        out = regrain_crop(flat, mask, seed=1, feather=0.0, device=CPU)
        added = immerkaer_sigma(out.astype(np.float32), mask)
        truth = immerkaer_sigma(noisy.astype(np.float32), mask)
        assert added == pytest.approx(truth, rel=0.3), centre


def test_blotchy_grain_stays_blotchy():
    """Demosaicing and JPEG make real grain spatially correlated. Grain copied from the photo keeps
    its correlation: the fill's ratio of noise (Immerkaer) to texture (Laplacian) is the photo's."""
    rng = np.random.default_rng(2)
    smooth = cv2.GaussianBlur(photos.coffee(), (0, 0), 5).astype(np.float64)
    blotches = cv2.GaussianBlur(rng.normal(0, 1, smooth.shape), (0, 0), 0.9)
    noisy = np.clip(smooth + 10 * blotches / blotches.std(), 0, 255).astype(np.uint8)
    mask = ellipse(noisy.shape, (300, 200), (50, 40))
    out = regrain_crop(cv2.inpaint(noisy, mask.astype(np.uint8), 5, cv2.INPAINT_TELEA), mask, seed=1, feather=0.0, device=CPU)

    def grey(image):
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def shape(image):
        return immerkaer_sigma(grey(image), mask) / cv2.Laplacian(grey(image), cv2.CV_32F, ksize=1)[mask].std()

    assert shape(out) == pytest.approx(shape(noisy), rel=0.15)
    assert immerkaer_sigma(grey(out), mask) == pytest.approx(immerkaer_sigma(grey(noisy), mask), rel=0.2)


def test_too_sharp_fill_is_pulled_down():
    truth = photos.gravel()
    mask = ellipse(truth.shape, (256, 256), (45, 35))
    rng = np.random.default_rng(1)
    harsh = np.where(mask, np.clip(truth + rng.normal(0, 40, truth.shape), 0, 255), truth).astype(np.uint8)
    before = measure_edit(truth, harsh, mask).noise_ratio
    after = measure_edit(truth, regrain_crop(harsh, mask, seed=1, feather=3.0, device=CPU), mask).noise_ratio
    assert before > 1.8 and after < 0.75 * before


def test_feathering_leaves_no_seam():
    truth = photos.grass()
    mask = ellipse(truth.shape, (256, 256), (45, 35))
    smudge = telea(truth, mask)
    out = regrain_crop(smudge, mask, seed=1, feather=3.0, device=CPU)
    assert measure_edit(truth, out, mask).seam_score < 1.6


def test_the_clarifier_is_built_from_the_config_once_per_worker():
    config = Config()
    assert config.clarify == "regrain"
    assert isinstance(get_clarifier("regrain", config), Regrain)
    assert get_clarifier("regrain", config) is get_clarifier("regrain", config)
    image = photos.chelsea()
    mask = ellipse(image.shape, (200, 150), (30, 20))
    out = get_clarifier("regrain", config)(telea(image, mask), mask, EditContext("c", "object", "remove", 5, config))
    assert out.shape == image.shape and out.dtype == np.uint8


def test_config_refuses_enhancing_before_removing():
    with pytest.raises(ValidationError, match="clarify must come after clean"):
        Config.model_validate({"steps": ["clarify", "clean"]})
    assert Config.model_validate({"steps": ["clean"]}).steps == ("clean",)


def test_sr_needs_weights_and_says_how_to_get_it():
    from tasks.clarify.sr import LearnedEnhancer, WeightsError

    with pytest.raises(WeightsError, match="sr.weights_uri"):
        LearnedEnhancer(Config.model_validate({"clarify": "sr"}))
