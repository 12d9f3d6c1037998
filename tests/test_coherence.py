"""Coherence transport (`tasks.clean.coherence`): lines go through a hole; nothing outside it moves."""

import cv2
import numpy as np
from skimage import data as photos

from tasks.clean.coherence import coherence_fill, line_directions


def _band(shape, rows, cols) -> np.ndarray:
    hole = np.zeros(shape[:2], np.uint8)
    hole[rows, cols] = 1
    return hole


def test_diagonal_bars_run_on_through_a_band_where_fast_marching_smears_them():
    yy, xx = np.mgrid[0:200, 0:300]
    bars = cv2.GaussianBlur((128 + 80 * np.sign(np.sin((xx + 0.7 * yy) / 9.0))).astype(np.float32), (0, 0), 1.2)
    image = np.clip(np.stack([bars, 0.8 * bars, 0.6 * bars], -1), 0, 255).astype(np.uint8)
    hole = _band(image.shape, slice(85, 110), slice(40, 260))  # a 25 px stroke across the bars
    out = coherence_fill(image, hole)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert (out[hole == 0] == image[hole == 0]).all()
    telea = cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA)
    inside = hole > 0
    error = np.abs(out - image)[inside].mean()
    assert error < 6 and error < np.abs(telea.astype(np.float32) - image)[inside].mean() / 3


def test_real_photos_lines_are_carried_closer_to_the_truth_than_by_fast_marching():
    cases = [(np.repeat(photos.camera()[330:480, 180:330, None], 3, 2), (slice(60, 80), slice(10, 140))),  # tripod legs
             (np.repeat(photos.brick()[100:300, 100:300, None], 3, 2), (slice(90, 110), slice(20, 180))),  # mortar
             (photos.astronaut()[0:200, 0:200], (slice(90, 108), slice(20, 180)))]  # the flag's stripes
    for image, (rows, cols) in cases:
        hole = _band(image.shape, rows, cols)
        inside = hole > 0
        ours = np.abs(coherence_fill(image, hole) - image)[inside].mean()
        telea = np.abs(cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA).astype(np.float32) - image)[inside].mean()
        assert ours < 0.8 * telea, (ours, telea)


def test_line_directions_read_the_lines_angle_and_see_none_in_flat_grain():
    yy = np.mgrid[0:120, 0:120][0]
    stripes = (128 + 60 * np.sin(yy / 4.0)).astype(np.float32)  # horizontal lines
    hole = np.zeros(stripes.shape, bool)
    hole[50:70, 30:90] = True
    along, coherence = line_directions(stripes, hole, 10.0)
    assert np.abs(along[60, 60, 1]) < 0.1 and coherence[60, 60] > 0.9  # along x, in the hole too
    grain = np.random.default_rng(0).normal(128, 10, (120, 120)).astype(np.float32)
    assert np.median(line_directions(grain, hole, 10.0)[1]) < 0.3


def test_the_fill_is_the_same_on_a_rerun_and_a_guide_steers_it():
    image = photos.astronaut()[0:200, 0:200]
    hole = _band(image.shape, slice(90, 108), slice(20, 180))
    first, second = coherence_fill(image, hole), coherence_fill(image.copy(), hole.copy())
    assert first.tobytes() == second.tobytes()
    flat = np.full(image.shape, 100.0, np.float32)
    flat[hole > 0] = 0
    # A constant difference is carried as it is, whatever lines the guide has.
    assert np.allclose(coherence_fill(flat, hole, guide=image)[hole > 0], 100.0, atol=1e-3)
