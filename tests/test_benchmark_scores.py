"""The listing benchmark's remnant, on a real photo with the truth kept: the figures issue 13's floors are read from."""

import numpy as np
from helpers import FONT
from PIL import Image, ImageDraw, ImageFont
from skimage import data as photos

from benchmarks.listing_benchmark import remnant


def caption(photo: np.ndarray, opacity: float) -> tuple[np.ndarray, np.ndarray]:
    """`photo` with a 90 px light "SOLD" blended on at `opacity`; (that image, the letters' pixels)."""
    layer = Image.new("L", (photo.shape[1], photo.shape[0]), 0)
    ImageDraw.Draw(layer).text((40, 30), "SOLD", font=ImageFont.truetype(FONT, 90), fill=255)
    alpha = np.asarray(layer, np.float32)[..., None] / 255 * opacity
    blended = (1 - alpha) * photo + alpha * np.array([235, 230, 220], np.float32)
    return np.rint(blended).astype(np.uint8), alpha[..., 0] > 0


def test_the_truth_under_a_semi_transparent_caption_scores_no_text_left():
    # Brick shows through a 40% caption: the input's departure from the photo's local mean holds the
    # brick's own texture, and measured from that mean the truth scored as letters left.
    truth = np.repeat(photos.brick()[..., None], 3, axis=-1)
    image, letters = caption(truth, 0.4)
    assert abs(remnant(truth, image, truth, letters)) < 1e-6
    assert abs(remnant(image, image, truth, letters) - 1.0) < 1e-6
    half = np.rint((image.astype(np.float32) + truth) / 2).astype(np.uint8)
    assert 0.4 < remnant(half, image, truth, letters) < 0.6


def test_a_fill_that_misses_the_photos_texture_is_not_text_left_and_one_in_the_letters_colour_is():
    truth = photos.rocket()
    image, letters = caption(truth, 1.0)
    # The photo's local mean under the letters: what a fill that knows the photo by its surroundings gives.
    smooth = truth.copy()
    smooth[letters] = np.asarray(Image.fromarray(truth).resize((64, 43)).resize(truth.shape[1::-1]))[letters]
    assert remnant(smooth, image, truth, letters) < 0.08
    tinted = smooth.copy()
    tinted[letters] = np.rint(0.7 * smooth[letters] + 0.3 * image[letters]).astype(np.uint8)
    assert remnant(tinted, image, truth, letters) > 0.2
