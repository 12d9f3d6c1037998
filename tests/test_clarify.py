"""Re-graining on real photos: the fill gets the photo's own grain, and nothing else changes."""

import cv2
import numpy as np
import pytest
import torch
from helpers import ellipse, telea
from pydantic import ValidationError
from skimage import data as photos

from tasks.clarify import regrain_crop
from tasks.clarify.regrain import Regrain
from tasks.clean import EditContext
from tasks.config import Config
from tasks.measure import measure_edit
from tasks.probes import immerkaer_sigma
from tasks.registry import STAGES, get_stage
from tasks.settings import RegrainConfig

CPU = torch.device("cpu")


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


def _batch_of_photos():
    """Photos of different sizes and kinds, their holes telea-filled: two holes on the coffee photo
    (two crops of one image), a grey photo, letters' strokes (a thin hole: fine grain only), a hole
    at the cat's bottom edge (its crop's edge too), a strip with no wholly known block (its blocks
    come from the windows that know most, never from past its edge in a taller batch) and a fill
    that copies grain."""
    coffee, camera, astronaut, chelsea = photos.coffee(), photos.camera(), photos.astronaut(), photos.chelsea()
    two_holes = ellipse(coffee.shape, (150, 120), (40, 30)) | ellipse(coffee.shape, (450, 300), (60, 35))
    strokes = np.zeros(astronaut.shape[:2], np.uint8)
    cv2.putText(strokes, "GRAIN", (60, 420), cv2.FONT_HERSHEY_SIMPLEX, 3, 1, 7)
    edge = np.zeros(chelsea.shape[:2], bool)
    edge[250:, 180:260] = True
    strip = photos.coffee()[:64]  # a hole across it: no block of its crop is wholly known
    across = np.zeros(strip.shape[:2], bool)
    across[16:48] = True
    cases = [(coffee, two_holes, "telea"), (camera, ellipse(camera.shape, (300, 200), (50, 40)), "telea"),
             (astronaut, strokes > 0, "telea"), (chelsea, edge, "telea"), (strip, across, "telea"),
             (photos.rocket(), ellipse(photos.rocket().shape, (300, 200), (45, 30)), "exemplar")]
    config = Config(device="cpu")
    return [(telea(image, mask), mask, EditContext(f"img{k}", "object", "remove", 10 + k, config,
                                                   fill_copies_grain=STAGES["clean", engine].copies_grain))
            for k, (image, mask, engine) in enumerate(cases)]


def test_a_batch_of_crops_gives_each_image_its_own_bytes(monkeypatch):
    """On CUDA the crops of a partition's images are re-grained together, each in the corner of a
    padded stack. Run here on the CPU with a batch of 8, with the CPU's kernels (crop by crop) and
    with the device's (the whole stack through torch): each image gets what it gets alone. The
    device's kernels sum the per-bin tables by a matrix product, in another order than the CPU's,
    so a value a float64 rounding away from a half grey level could round the other way."""
    from tasks.clarify import regrain

    items = _batch_of_photos()
    alone = [Regrain(RegrainConfig(), CPU)(*item) for item in items]
    for _, mask, _ in items:
        assert mask.any()
    sizes = []
    batch = regrain._regrain_batch
    monkeypatch.setattr(regrain, "_regrain_batch", lambda jobs, *rest: (sizes.append(len(jobs)), batch(jobs, *rest))[1])
    together = Regrain(RegrainConfig(), CPU, cpu_batch=8)
    for kernels in ("cpu", "device"):
        if kernels == "device":
            monkeypatch.setattr(regrain, "_cpu_kernels", lambda device: False)
        sizes.clear()
        outputs = together.run_many(items)
        assert max(sizes) >= 3, sizes  # crops of several images did share a batch
        for (image, mask, _), out, own in zip(items, outputs, alone):
            assert np.array_equal(out[~mask], image[~mask])
            assert (out[mask] != image[mask]).any()
            if kernels == "cpu":
                assert np.array_equal(out, own)
            else:
                change = np.abs(out.astype(int) - own.astype(int))[mask]
                assert change.max() <= 1 and (change > 0).mean() < 1e-3, (change.max(), (change > 0).mean())


def test_crops_that_teach_nothing_are_left_as_they_are_alone_and_in_a_batch(monkeypatch):
    """A strip thinner than a block of grain, and a mesh of a mask whose known pixels all miss the
    grid the statistics are read on, have nothing to cut grain from: they come back as they were,
    alone and beside a photo in a batch on the device's kernels (where a window of the padding or
    an index of -1 would otherwise be taken)."""
    from tasks.clarify import regrain

    coffee = photos.coffee()
    strip = np.ascontiguousarray(coffee[200:203])
    strip_hole = np.zeros(strip.shape[:2], bool)
    strip_hole[:, 100:300] = True
    mesh = np.ascontiguousarray(coffee[:120, :160])
    mesh_hole = np.ones(mesh.shape[:2], bool)
    mesh_hole[1::2, 1::2] = False  # known pixels on odd rows and columns only: the stride-2 grid sees none
    hole = ellipse(coffee.shape, (300, 200), (50, 40))
    config = Config(device="cpu")
    items = [(telea(image, mask), mask, EditContext(f"img{k}", "object", "remove", k, config))
             for k, (image, mask) in enumerate([(strip, strip_hole), (mesh, mesh_hole), (coffee, hole)])]
    clarifier = Regrain.from_config(config)
    alone = [clarifier(*item) for item in items]
    assert np.array_equal(alone[0], items[0][0]) and np.array_equal(alone[1], items[1][0])
    assert not np.array_equal(alone[2], items[2][0])
    monkeypatch.setattr(regrain, "_cpu_kernels", lambda device: False)
    batched = Regrain(config.regrain, CPU, cpu_batch=8)
    for out, own in zip(batched.run_many(items), alone):
        assert np.array_equal(out, own)


def test_the_device_reflects_each_crop_at_its_own_edges_as_opencv_does():
    """The device's blur and probes pad each crop of a stack by reflecting it at its own edges
    (BORDER_REFLECT_101), however short it is against the pad."""
    from tasks.clarify.regrain import _reflect_pad

    lengths = [1, 2, 3, 5, 9, 10, 14]
    stack = torch.zeros((len(lengths), 1, 1, max(lengths)), dtype=torch.float64)
    for b, length in enumerate(lengths):
        stack[b, 0, 0, :length] = torch.arange(1, length + 1, dtype=torch.float64)
    padded = _reflect_pad(stack, lengths, 9, 3)
    for b, length in enumerate(lengths):
        row = np.arange(1, length + 1, dtype=np.float64)
        expected = cv2.copyMakeBorder(row[None], 0, 0, 9, 9, cv2.BORDER_REFLECT_101)[0] if length > 1 else np.ones(19)
        assert np.array_equal(padded[b, 0, 0, : length + 18].numpy(), expected), length


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
        context = EditContext("gravel", "object", "remove", 1, config, fill_copies_grain=STAGES["clean", engine].copies_grain)
        return get_stage("clarify", "regrain", config)(fill, mask, context)

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
    assert isinstance(get_stage("clarify", "regrain", config), Regrain)
    assert get_stage("clarify", "regrain", config) is get_stage("clarify", "regrain", config)
    image = photos.chelsea()
    mask = ellipse(image.shape, (200, 150), (30, 20))
    out = get_stage("clarify", "regrain", config)(telea(image, mask), mask, EditContext("c", "object", "remove", 5, config))
    assert out.shape == image.shape and out.dtype == np.uint8


def test_config_refuses_enhancing_before_removing():
    with pytest.raises(ValidationError, match="clarify must come after clean"):
        Config.model_validate({"steps": ["clarify", "clean"]})
    assert Config.model_validate({"steps": ["clean"]}).steps == ("clean",)


def test_sr_needs_weights_and_says_how_to_get_it():
    from tasks.clarify.sr import LearnedEnhancer, WeightsError

    with pytest.raises(WeightsError, match=r"sr\.weights_uri"):
        LearnedEnhancer.from_config(Config.model_validate({"clarify": "sr"}))


def test_grain_is_not_cut_from_lines_crossing_the_surroundings():
    """Cables across a clear sky: blocks cut from windows they cross would copy them into the fill
    as dark and light specks of their shape (the clip only flattens their cores). Windows clear of
    lines serve where the crop has them, so the fill stays as smooth as the sky."""
    sky = photos.camera()[0:150, 290:512].copy()
    for x0 in (10, 40, 160, 190):
        cv2.line(sky, (x0, 0), (x0 + 30, 150), 40, 2, cv2.LINE_AA)
    mask = ellipse(sky.shape, (110, 60), (35, 30))
    fill = telea(sky, mask)
    out = regrain_crop(fill, mask, seed=1, feather=3.0, device=CPU)
    changed = np.abs(out.astype(int) - fill.astype(int))[mask]
    assert np.count_nonzero(changed > 10) < 0.01 * changed.size  # 788 of 3393 when blocks took the cables


def _chroma_detail(image, mask):
    """RMS of the colour planes' (Cr, Cb) detail finer than a sigma of 3 in `mask` (benchmarks' chroma_ratio)."""
    chroma = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float32)[..., 1:]
    return np.sqrt(((chroma - cv2.GaussianBlur(chroma, (0, 0), 3.0)) ** 2).sum(-1)[mask].mean())


def test_grain_keeps_the_photos_colour_no_channel_left_out():
    """A fill whose blue keeps the photo's detail while red and green lost theirs (a text fill over
    foliage did this): the grain goes into every channel with one gain per intensity bin, as the
    copied blocks carry it. Left alone in blue and re-grained in red and green, the fill broke out
    in yellow and blue specks, 50-100 grey levels off, that no luminance measure saw (here: a
    third more colour detail than the fill had, blue given a quarter of green's grain)."""
    truth = photos.astronaut()
    mask = ellipse(truth.shape, (300, 200), (50, 40))
    fill = telea(truth, mask)
    fill[..., 2] = truth[..., 2]  # blue: the photo's own detail
    out = regrain_crop(fill, mask, seed=1, feather=0.0, device=CPU)
    added = out.astype(np.float64) - fill
    spread = [added[..., c][mask].std() for c in range(3)]
    assert min(spread) > 0.4 * max(spread), spread

    assert _chroma_detail(out, mask) < 1.15 * _chroma_detail(fill, mask)


def test_grain_brings_no_more_colour_than_the_photos_detail_has():
    """A JPEG's calm parts carry more colour for their grey than its texture does (chroma noise; its
    edges are mostly grey): grain cut there and amplified to the texture's level painted colour
    specks, 3.6 times the truth's colour detail on this cat's fur. The colour part of the grain is
    held to the photo's, its luminance still brings the texture back."""
    _, encoded = cv2.imencode(".jpg", photos.chelsea()[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    truth = np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])
    mask = ellipse(truth.shape, (150, 200), (50, 40))
    smudge = telea(truth, mask)
    out = regrain_crop(smudge, mask, seed=1, feather=3.0, device=CPU)

    assert _chroma_detail(out, mask) < 1.5 * _chroma_detail(truth, mask)
    smudged = measure_edit(truth, smudge, mask).texture_ratio
    assert measure_edit(truth, out, mask).texture_ratio > 2 * smudged
