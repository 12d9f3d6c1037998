"""The reference-free metrics, validated on known cases with real photos and kept ground truth."""

import typing

import cv2
import numpy as np
import pytest
from helpers import FONT, ellipse, telea
from PIL import Image, ImageDraw, ImageFont
from skimage import data as photos

from tasks.measure import measure_edit, outside_changed
from tasks.probes import immerkaer_sigma


def sale(photo: np.ndarray, xy: tuple[int, int], colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`photo` with a 70 px "SALE" drawn at `xy` in `colour`; (that image, its letters' pixels)."""
    drawn = Image.fromarray(photo)
    ImageDraw.Draw(drawn).text(xy, "SALE", font=ImageFont.truetype(FONT, 70), fill=colour)
    drawn = np.asarray(drawn)
    return drawn, np.abs(drawn.astype(int) - photo).max(axis=-1) > 0


@pytest.mark.parametrize("name", ["brick", "gravel", "grass"])
def test_truthful_fill_scores_near_one_and_telea_scores_as_a_smudge(name):
    truth = getattr(photos, name)()
    mask = ellipse(truth.shape, (truth.shape[1] // 2, truth.shape[0] // 2), (45, 35))
    honest = measure_edit(truth, truth, mask)
    assert 0.75 <= honest.texture_ratio <= 1.33
    assert 0.75 <= honest.noise_ratio <= 1.33
    assert 0.6 <= honest.seam_score <= 1.6
    smudge = measure_edit(truth, telea(truth, mask), mask)
    assert smudge.texture_ratio < 0.5
    assert smudge.noise_ratio < 0.75


def test_a_clipped_sky_filled_as_flat_as_it_is_scores_one_and_added_grain_does_not():
    # A white caption over a blown-out sky: the ring is 255 everywhere, and so is a faithful fill.
    photo = photos.astronaut().copy()
    photo[:120] = 255
    mask = ellipse(photo.shape, (250, 60), (60, 20))
    flat = measure_edit(photo, photo, mask)
    assert flat.texture_ratio == 1.0 and flat.noise_ratio == 1.0
    grainy = photo.copy()
    grainy[mask] = np.random.default_rng(0).integers(235, 256, (int(mask.sum()), 3))
    assert measure_edit(photo, grainy, mask).texture_ratio > 3.0, "grain on a flat sky is a visible patch"


def test_an_obvious_seam_is_caught():
    truth = photos.astronaut()
    mask = ellipse(truth.shape, (380, 300), (50, 40))
    shifted = np.where(mask[..., None], np.clip(truth.astype(int) + 60, 0, 255), truth).astype(np.uint8)
    honest = measure_edit(truth, truth, mask).seam_score
    assert honest < 1.6
    assert measure_edit(truth, shifted, mask).seam_score > max(2.0, 1.8 * honest)


def test_a_broken_line_is_caught():
    """A dark cable crosses the sky of a real photo; a fill that carries it on scores 1, one that
    cuts it scores 0."""
    sky = photos.camera()
    cable = sky.copy()
    cv2.line(cable, (0, 20), (511, 100), 20, 3)
    mask = ellipse(cable.shape, (400, 82), (40, 30))
    continued = measure_edit(cable, cable, mask)
    broken = measure_edit(cable, np.where(mask, sky, cable), mask)
    assert continued.structure_entries == broken.structure_entries >= 3
    assert continued.structure_continuity == 1.0
    assert broken.structure_continuity == 0.0


def test_ghost_of_removed_text():
    coffee = photos.coffee()
    image = Image.fromarray(coffee)
    ImageDraw.Draw(image).text((100, 120), "SALE", font=ImageFont.load_default(size=60), fill=(255, 255, 255),
                               stroke_width=2, stroke_fill=(0, 0, 0))
    texted = np.asarray(image)
    mask = np.zeros(coffee.shape[:2], bool)
    mask[110:200, 90:260] = True
    clean = measure_edit(texted, coffee, mask, removal="text").ghost_score
    # A faint ghost: the letters at a third of their contrast are still legible.
    ghost = np.clip(coffee + (texted.astype(int) - coffee) // 3, 0, 255).astype(np.uint8)
    ghosted = measure_edit(texted, ghost, mask, removal="text").ghost_score
    assert 0.7 < clean < 1.5 and ghosted > 2 * clean


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_a_fill_with_the_photos_own_texture_is_no_ghost(name):
    # Issue 13: a fill that copies the photo's texture (PatchMatch on rock, fibres) has edges of its
    # own in what the edit took away; counted as the letters' outlines, a clean edit over rock was
    # refused (held-out listing row 011). A 70 px "SALE", masked to its pixels grown by 2: the photo
    # itself and its texture from 40 px beside the word both score as no ghost (coffee: 2.96 and 3.71
    # before), and the letters left at a third of their contrast still do.
    photo = getattr(photos, name)()
    texted, ink = sale(photo, (100, 120), (255, 255, 255))
    mask = cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    copied = photo.copy()
    copied[mask] = np.roll(photo, 40, axis=1)[mask]
    ghost = np.clip(photo + (texted.astype(int) - photo) // 3, 0, 255).astype(np.uint8)
    scores = [measure_edit(texted, out, mask, removal="text").ghost_score for out in (photo, copied, ghost)]
    assert scores[0] < 1.3 and scores[1] < 1.3 and scores[2] > 1.6, scores


@pytest.mark.parametrize("name, gain, xy", [("astronaut", 2.0, (305, 145)), ("camera", 1.5, (20, 10))])
def test_a_clean_fill_over_a_clipped_sky_is_no_ghost(name, gain, xy):
    # Dark letters over an over-exposed (255) patch, saved as JPEG, masked to the letters grown by a
    # pixel: the photo put back is flat, and the JPEG's ringing on the contour, over a gradient of
    # nothing beside it, scored 10^6 and refused a perfect fill; a ghost a tenth of the letters'
    # contrast is still one.
    photo = getattr(photos, name)()
    photo = np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo
    photo = np.clip(photo.astype(int) * gain, 0, 255).astype(np.uint8)
    drawn, ink = sale(photo, xy, (30, 30, 30))
    texted = cv2.imdecode(cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_UNCHANGED)
    mask = cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert (photo[mask] == 255).all(axis=-1).mean() > 0.9
    truth = np.where(mask[..., None], photo, texted)
    ghost = np.where(mask[..., None], np.clip(photo + (drawn.astype(int) - photo) // 10, 0, 255), texted).astype(np.uint8)
    scores = [measure_edit(texted, out, mask, removal="text").ghost_score for out in (truth, ghost)]
    assert scores[0] < 1.3 and scores[1] > 1.6, scores


def test_privacy_residual_tells_a_mosaic_from_a_light_blur():
    from tasks.clean import EditContext, composite
    from tasks.config import Config
    from tasks.registry import get_stage

    config = Config()
    face = photos.astronaut()
    mask = np.zeros(face.shape[:2], bool)
    mask[40:200, 170:290] = True
    mosaic = composite(face, get_stage("clean", "blur", config)(face, mask, EditContext("a", "object", "blur", 0, config)), mask)
    light = np.where(mask[..., None], cv2.GaussianBlur(face, (0, 0), 1.0), face)
    assert measure_edit(face, mosaic, mask, action="blur").privacy_residual < 0.05
    assert measure_edit(face, light, mask, action="blur").privacy_residual > 0.2


def test_immerkaer_recovers_a_known_noise_level():
    rng = np.random.default_rng(0)
    flat = np.full((256, 256), 128.0, np.float32) + rng.normal(0, 5.0, (256, 256)).astype(np.float32)
    assert immerkaer_sigma(flat, np.ones_like(flat, bool)) == pytest.approx(5.0, rel=0.05)


def test_outside_changed_counts_pixels_not_channels():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (1, 1, 1)
    b[3, 3, 2] = 9
    mask = np.zeros((4, 4), bool)
    mask[3, 3] = True
    assert outside_changed(a, b, mask) == 1


def test_per_component_metrics_and_area_weighting():
    truth = photos.gravel()
    mask = ellipse(truth.shape, (120, 120), (30, 30)) | ellipse(truth.shape, (380, 380), (60, 60))
    fill = truth.copy()
    small = ellipse(truth.shape, (120, 120), (30, 30))
    fill[small] = telea(truth, small)[small]  # only the small component is smudged
    metrics = measure_edit(truth, fill, mask)
    assert len(metrics.components) == 2
    ratios = sorted(c["texture_ratio"] for c in metrics.components)
    assert ratios[0] < 0.5 and ratios[1] > 0.75
    assert ratios[0] < metrics.texture_ratio < ratios[1]


def test_text_left_in_the_removed_region_is_found_at_the_scale_it_needs():
    """Measure's text check looks at a crop around the removed region, scaled for the text's height
    (not the crop upscaled to the detector's 736 px): it fires on text left in place, not on the photo."""
    from tasks.detect.text import TextDetector
    from tasks.masks_text import refine_text_mask
    from tasks.measure import text_still_detected

    class Recording(TextDetector):
        scales: typing.ClassVar[list] = []

        def regions(self, image, scale=None, contrast=True):
            self.scales.append((image.shape[:2], scale))
            return super().regions(image, scale, contrast)

    tile = np.concatenate([photos.coffee()] * 4, axis=1)  # 400x2400: a wide frame
    image = Image.fromarray(tile)
    ImageDraw.Draw(image).text((900, 150), "SALE 50%", font=ImageFont.load_default(size=48), fill=(255, 255, 255),
                               stroke_width=2, stroke_fill=(0, 0, 0))
    texted = np.asarray(image)
    box = np.zeros(tile.shape[:2], bool)
    box[140:220, 890:1150] = True
    mask = refine_text_mask(texted, box)
    detector = Recording()
    assert text_still_detected(texted, mask, detector)
    assert not text_still_detected(np.where(mask[..., None], tile, texted), mask, detector)
    (crop, scale), _ = detector.scales
    assert crop[0] < 150 and crop[1] < 320  # a crop around the region, not the frame
    # At least the frame's own scale (what the detector finds on the frame it finds again), and far
    # below the crop's short side upscaled to 736 px (about 6x here).
    assert detector.scale_for(tile.shape) <= scale < detector.scale_for(crop) / 2


@pytest.mark.parametrize("colour", [(240, 240, 240), (20, 20, 20)])
def test_a_clean_fill_of_a_mask_drawn_to_the_letters_is_no_ghost(colour):
    # Issue 13: a mask drawn to the letters' own pixels has their outlines on its edge, and the
    # gradient there reads the photo's texture beside the mask, where the letters' interiors, the
    # rest of the fill, are calm: the truth itself, put back into such a mask, scored 2.2-2.4 (a
    # clean fill of dev listing row 101/031 scored 2.1, its truth 1.6) and was refused. The photo's
    # own gradient around the mask counts with the fill's; a ghost a third of the letters' contrast
    # is still one.
    photo = photos.rocket()
    drawn, ink = sale(photo, (200, 150), colour)
    texted = cv2.imdecode(cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_UNCHANGED)
    truth = np.where(ink[..., None], photo, texted)
    ghost = np.where(ink[..., None], np.clip(photo + (drawn.astype(int) - photo) // 3, 0, 255), texted).astype(np.uint8)
    scores = [measure_edit(texted, out, ink, removal="text").ghost_score for out in (truth, ghost)]
    assert scores[0] < 1.3 and scores[1] > 1.6, scores
