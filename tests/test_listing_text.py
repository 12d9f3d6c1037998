"""Issue 13: text removal that holds on listing overlays (drawn masks are floors, both layers of an
outlined caption are found, wide strokes are filled with the photo's texture, Measure sees remnants, refused
edits are retried)."""

import cv2
import numpy as np
import pytest
from helpers import FONT, save
from PIL import Image, ImageDraw, ImageFont
from skimage import data as photos

import tasks.clean.text as text_engine
from tasks.clean.text import TextRemover, clone_fill, membrane_fill, patch_fill, smooth_parts, split_by_width
from tasks.config import Config
from tasks.masks_text import continue_lines, refine_text_mask
from tasks.measure import remnant_score
from tasks.partition import edit_row
from tasks.probes import immerkaer_sigma, luminance
from tasks.settings import TextConfig
from tasks.stages import EditContext


def caption(photo: np.ndarray, text="OPEN HOUSE", xy=(60, 380), size=48, fill=(255, 220, 0, 255),
            outline=3, stroke=(20, 20, 20, 255)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`photo` with a yellow, dark-outlined listing caption; (image, every ink pixel, the fill's pixels)."""
    try:
        font = ImageFont.truetype(FONT, size)
    except OSError:
        font = ImageFont.load_default(size=size)
    layer = Image.new("RGBA", (photo.shape[1], photo.shape[0]), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(xy, text, font=font, fill=fill, stroke_width=outline, stroke_fill=stroke)
    core = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    ImageDraw.Draw(core).text(xy, text, font=font, fill=(255, 255, 255, 255))
    image = np.asarray(Image.alpha_composite(Image.fromarray(photo).convert("RGBA"), layer).convert("RGB"))
    return image, np.asarray(layer)[..., 3] > 0, np.asarray(core)[..., 3] > 128


def test_both_layers_of_an_outlined_caption_are_found_in_its_box():
    truth = photos.astronaut()
    image, ink, fill = caption(truth)
    ys, xs = np.nonzero(ink)
    box = np.zeros(ink.shape, bool)
    box[ys.min() - 6:ys.max() + 7, xs.min() - 6:xs.max() + 7] = True
    refined = refine_text_mask(image, box)
    assert np.count_nonzero(refined & fill) / np.count_nonzero(fill) >= 0.98  # the yellow letters
    assert np.count_nonzero(refined & ink) / np.count_nonzero(ink) >= 0.98  # and their outline


def test_a_dark_outline_over_a_dark_photo_goes_whole():
    # White letters in a 4 px black outline over the dark room behind the astronaut: the outline is a
    # set of its own nowhere (the room is as dark), yet 2 px of it beyond the grown strokes read as a
    # hairline around every letter once the fill is done (issue 13, "JUST LISTED").
    truth = photos.astronaut()
    image, ink, _ = caption(truth, text="JUST LISTED", xy=(250, 440), size=36, fill=(245, 245, 240, 255),
                            outline=4, stroke=(15, 15, 15, 255))
    ys, xs = np.nonzero(ink)
    box = np.zeros(ink.shape, bool)
    box[ys.min() - 6:ys.max() + 7, xs.min() - 6:xs.max() + 7] = True
    refined = refine_text_mask(image, box)
    visible = ink & (np.abs(image.astype(int) - truth).max(axis=-1) > 32)
    # 3.4% of the ink was left, visibly off the photo, before the outline's band was taken.
    assert np.count_nonzero(visible & ~refined) < 0.02 * np.count_nonzero(ink)
    assert refined.sum() < 0.85 * box.sum()  # still the letters, not the box


@pytest.mark.parametrize("fringe", [True, False])
def test_the_faint_outer_edge_of_a_semi_transparent_outline_is_taken(fringe, monkeypatch):
    # A light fill in a dark outline, both at 47% (listing row 002, "PRICE REDUCED"): the strokes end
    # inside the outline, and its outer anti-aliased edge, left beyond the grown strokes, reads as a
    # hairline round every letter once the fill is done.
    import tasks.masks_text as masks_text

    if not fringe:
        monkeypatch.setattr(masks_text, "FRINGE_STEPS", 0)
    truth = cv2.GaussianBlur(photos.coffee(), (0, 0), 4)
    image, ink, _ = caption(truth, text="PRICE", xy=(40, 150), size=96, fill=(235, 235, 235, 120), outline=4,
                            stroke=(40, 40, 40, 120))
    ys, xs = np.nonzero(ink)
    box = np.zeros(ink.shape, bool)
    box[ys.min() - 8:ys.max() + 9, xs.min() - 8:xs.max() + 9] = True
    refined = refine_text_mask(image, box)
    visible = np.abs(image.astype(int) - truth).max(axis=-1) > 12
    left = np.count_nonzero(visible & ~refined) / np.count_nonzero(visible)
    # Measured: 10% of the visibly changed pixels left out without the step, 1% with it.
    assert (left < 0.03) == fringe
    assert refined.sum() < 0.8 * box.sum()  # still the letters, not the box


def test_each_line_of_a_region_holding_two_is_refined_on_its_own():
    # A dark phone number stacked under a white, dark-outlined banner, in one region: refined
    # together, the banner's opaque white is the ink and the number's letters, far from it, are photo
    # (detect benchmark frame 14 kept 2% of them). Refined line by line, each keeps its own letters.
    photo = photos.rocket()
    layer = Image.fromarray(photo)
    draw = ImageDraw.Draw(layer)
    banner, number = ImageFont.load_default(size=30), ImageFont.load_default(size=40)
    draw.text((20, 20), "UNDER CONTRACT", font=banner, fill=(245, 245, 240), stroke_width=2, stroke_fill=(20, 20, 20))
    draw.text((120, 58), "Call 555-7788", font=number, fill=(33, 50, 65))
    image = np.asarray(layer)
    alone = Image.new("L", layer.size, 0)
    ImageDraw.Draw(alone).text((120, 58), "Call 555-7788", font=number, fill=255)
    ink = np.asarray(alone) > 25
    lines = np.zeros(photo.shape[:2], np.int32)
    for label, (x0, y0, x1, y1) in enumerate([draw.textbbox((20, 20), "UNDER CONTRACT", font=banner, stroke_width=2),
                                              draw.textbbox((120, 58), "Call 555-7788", font=number)], 1):
        lines[y0 - 8:y1 + 8, x0 - 8:x1 + 8] = label
    region = lines > 0
    assert cv2.connectedComponents(region.astype(np.uint8))[0] - 1 == 1
    together = refine_text_mask(image, region)
    apart = refine_text_mask(image, region, lines=lines)
    assert np.count_nonzero(together & ink) < 0.1 * np.count_nonzero(ink), "the failure this guards against"
    assert np.count_nonzero(apart & ink) > 0.95 * np.count_nonzero(ink)
    assert np.count_nonzero(apart) < 0.8 * np.count_nonzero(region), "strokes, not a line kept whole (88%)"
    assert np.count_nonzero(apart & together) > 0.95 * np.count_nonzero(together), "the banner's strokes stay"
    assert not (apart & ~region).any()
    # A box the user drew round the number, touching the banner's region: its pixels go with the
    # line nearest them, not with the first.
    boxed = region.copy()
    ys, xs = np.nonzero(ink)
    boxed[ys.min() - 12:ys.max() + 13, xs.min() - 12:xs.max() + 13] = True
    with_box = refine_text_mask(image, boxed, lines=np.where(boxed & (lines == 0), 0, lines))
    assert np.count_nonzero(with_box & ink) > 0.95 * np.count_nonzero(ink)
    one_line = np.where(region, 1, 0).astype(np.int32)
    assert np.array_equal(refine_text_mask(image, region, lines=one_line), together), "one line: as before"


def _copyright_line(photo: np.ndarray, bar: bool = False):
    """`photo` with a white, dark-outlined '© stockphoto' (44 px) as listings carry it, and the
    detector's view of it: its line region and strokes around 'stockphoto' alone (it sees no text in
    a lone '©'). With `bar`, a white bar of the ink's colour runs down the photo at the '©''s gap from
    the word, instead of the '©'. Returns (image, strokes, lines, the '©''s ink)."""
    font = ImageFont.truetype(FONT, 44)
    layer = Image.fromarray(photo)
    draw = ImageDraw.Draw(layer)
    word_at, symbol_at = (120, photo.shape[0] - 100), (60, photo.shape[0] - 100)
    draw.text(word_at, "stockphoto", font=font, fill=(250, 250, 250), stroke_width=3, stroke_fill=(20, 20, 20))
    symbol = Image.new("L", layer.size, 0)
    if bar:
        draw.rectangle((75, 0, 100, photo.shape[0]), fill=(250, 250, 250))
    else:
        draw.text(symbol_at, "©", font=font, fill=(250, 250, 250), stroke_width=3, stroke_fill=(20, 20, 20))
        ImageDraw.Draw(symbol).text(symbol_at, "©", font=font, fill=255, stroke_width=3, stroke_fill=255)
    word = Image.new("L", layer.size, 0)
    ImageDraw.Draw(word).text(word_at, "stockphoto", font=font, fill=255, stroke_width=3, stroke_fill=255)
    strokes = cv2.dilate((np.asarray(word) > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    x0, y0, x1, y1 = draw.textbbox(word_at, "stockphoto", font=font, stroke_width=3)
    lines = np.zeros(photo.shape[:2], np.int32)
    lines[y0 - 10:y1 + 10, x0 - 10:x1 + 10] = 1
    return np.asarray(layer), strokes, lines, np.asarray(symbol) > 128


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_a_lone_copyright_sign_the_detector_leaves_out_goes_with_its_line(name):
    # Listing row 019 (seed 2024): the detector took 'stockphoto' and left its '©', which was published.
    image, strokes, lines, symbol = _copyright_line(getattr(photos, name)())
    assert not (strokes & symbol).any(), "the case: the line's strokes miss the ©"
    found = continue_lines(image, strokes, lines, grow=2)
    assert np.count_nonzero(found & symbol) >= 0.98 * np.count_nonzero(symbol)
    # The © and its outline's reach (INK_REACH + grow), not the photo beside it.
    near = cv2.dilate(symbol.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))) > 0
    assert not (found & ~strokes & ~near).any()
    assert np.count_nonzero(found & ~strokes) < 2 * np.count_nonzero(symbol)
    assert np.array_equal(found & strokes, strokes)
    assert np.array_equal(continue_lines(image, strokes, lines, gap=0), strokes), "0 = off"


def test_a_copyright_sign_after_the_word_or_in_grey_goes_too():
    # 'stockphoto ©' (the frame mirrored: the window beyond the line's right end), and a grey photo.
    image, strokes, lines, symbol = _copyright_line(photos.chelsea())
    near = cv2.dilate(symbol.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))) > 0
    mirrored = continue_lines(np.ascontiguousarray(image[:, ::-1]), strokes[:, ::-1], lines[:, ::-1], grow=2)
    assert np.count_nonzero(mirrored[:, ::-1] & symbol) >= 0.98 * np.count_nonzero(symbol)
    assert not (mirrored[:, ::-1] & ~strokes & ~near).any()
    grey = continue_lines(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), strokes, lines, grow=2)
    assert np.count_nonzero(grey & symbol) >= 0.98 * np.count_nonzero(symbol)
    assert not (grey & ~strokes & ~near).any()


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_what_runs_past_a_lines_rows_is_photo_not_a_glyph(name):
    # A bar of the ink's own white where the © would be, running the photo's height: not a glyph.
    image, strokes, lines, _ = _copyright_line(getattr(photos, name)(), bar=True)
    assert np.array_equal(continue_lines(image, strokes, lines), strokes)
    # Nor does anything of these photos beside the line pass for one.
    plain, strokes, lines, _ = _copyright_line(getattr(photos, name)())
    word_only = plain.copy()
    word_only[:, :112] = getattr(photos, name)()[:, :112]
    assert np.array_equal(continue_lines(word_only, strokes, lines), strokes)


def test_a_detect_row_refines_stacked_lines_apart(make_job, tmp_path, monkeypatch):
    from test_detect import stacked

    import tasks.partition as partition

    image, _, ink = stacked(photos.rocket())
    save(tmp_path / "data" / "img.png", image)
    masks = []

    def recorded(image, region, **settings):
        masks.append(refine_text_mask(image, region, **settings))
        return masks[-1]

    monkeypatch.setattr(partition, "refine_text_mask", recorded)
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "detect": ["text"], "removal": "text"},
                      make_job(gate={"retry": False}))
    assert record["outside_changed"] == 0
    assert np.count_nonzero(masks[0] & ink) > 0.95 * np.count_nonzero(ink)


def test_join_lines_keeps_one_detectors_split_and_joins_what_only_overlaps():
    from tasks.masks_text import join_lines

    first = np.zeros((60, 100), np.int32)
    first[5:30, 5:95] = 1
    first[30:55, 5:95] = 2  # one detector's two stacked lines
    other = np.zeros_like(first)
    other[20:40, 60:99] = 7  # another detector's region over both
    joined = join_lines([first, other])
    assert np.array_equal(joined > 0, (first > 0) | (other > 0))
    assert joined[10, 10] != joined[50, 10] and len(np.unique(joined[joined > 0])) == 2
    alone = np.zeros_like(first)
    alone[5:20, 5:40], alone[10:30, 30:60] = 3, 4  # only overlapping, in one detector each
    assert len(np.unique(join_lines([alone, np.zeros_like(alone)])[alone > 0])) == 2
    assert len(np.unique(join_lines([np.where(alone == 3, 3, 0), np.where(alone == 4, 4, 0)])[alone > 0])) == 1


def test_a_drawn_text_mask_is_never_cut(make_job, tmp_path):
    image, ink, _ = caption(photos.astronaut())
    save(tmp_path / "data" / "img.png", image)
    drawn = np.asarray(Image.fromarray(ink).resize(ink.shape[::-1]))  # exactly the ink, as a careful user draws it
    save(tmp_path / "data" / "mask.png", drawn.astype(np.uint8) * 255)
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "mask_uri": "mask.png", "removal": "text"},
                      make_job())
    assert record["status"] == "published", record.get("reason")
    # Stroke refinement would cut the letters' interiors out of a mask this shape; the drawn mask stays whole.
    assert record["mask_fraction"] >= drawn.mean()


def test_wide_strokes_are_cloned_with_the_photos_grain_and_thin_ones_left_to_inpainting():
    rng = np.random.default_rng(0)
    grass = np.clip(photos.astronaut()[380:500, 0:300].astype(np.float32) + rng.normal(0, 6, (120, 300, 3)), 0, 255)
    grass = grass.astype(np.uint8)
    wide = np.zeros(grass.shape[:2], bool)
    wide[50:66, 40:260] = True  # a 16 px stroke
    thin = np.zeros_like(wide)
    thin[20:24, 40:260] = True  # a 4 px stroke
    parts = split_by_width(wide | thin, 8.0)
    assert parts[0][22, 100] and not parts[0][58, 100] and parts[1][58, 100] and not parts[1][22, 100]
    filled = clone_fill(grass, wide, thin)
    assert (filled[~wide] == grass[~wide]).all()
    lum_in, lum_out = luminance(filled), luminance(grass)
    ring = np.zeros_like(wide)
    ring[70:100, 40:260] = True
    # Copied pixels carry the photo's grain: no smudge (a diffusion fill's sigma is a fraction of it).
    assert 0.6 <= immerkaer_sigma(lum_in, wide) / immerkaer_sigma(lum_out, ring) <= 1.6


def test_wide_letters_over_a_smooth_sky_are_filled_from_their_edge_not_cloned():
    # Issue 13 (listing rows 013, 034): over a smooth sky a clone copies in what lies a few heights
    # away, here the cameraman's camera and coat, in the letters' shape (41 grey levels off the sky).
    truth = np.ascontiguousarray(np.repeat(photos.camera()[0:220, :, None], 3, axis=2))
    layer = Image.new("L", (512, 220), 0)
    ImageDraw.Draw(layer).text((40, 40), "SOLD", font=ImageFont.truetype(FONT, 90), fill=255)
    ink = np.asarray(layer) > 0
    hole = cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    image = truth.copy()
    image[ink] = (30, 200, 60)
    sky = hole.copy()
    sky[:, 150:] = False  # "S" and "O": the "L" and "D" lie over the cameraman's hair
    assert smooth_parts(image, hole, hole, 3.0)[sky].all()
    assert not smooth_parts(image, hole, hole, 3.0)[hole & ~sky].all()
    context = EditContext("t", "text", "remove", 0, Config(), strokes_refined=True)
    errors = {}
    for grain in (3.0, 0.0):
        out = TextRemover(TextConfig(smooth_grain=grain, wide_fill="clone"))(image, hole, context)
        assert (out[~hole] == image[~hole]).all()
        errors[grain] = np.abs(out.astype(int) - truth.astype(int)).max(axis=-1)[sky].mean()
    assert errors[3.0] < 8 and errors[0.0] > 2.5 * errors[3.0], errors  # 4.7 against 14.5 grey levels


@pytest.mark.parametrize("name", ["brick", "coffee"])
def test_wide_letters_over_a_busy_photo_are_filled_with_its_texture_not_a_blob(name):
    # Issue 13 (listing row 027, a cream "Call 555-7788" over fibres): the clone's membrane is smooth
    # inside each letter, and on a busy photo it is left as a blob in the letter's shape (the brick's
    # mortar drawn as pieces of "SOLD"); PatchMatch runs the photo's own texture on through.
    photo = getattr(photos, name)()
    truth = np.ascontiguousarray(photo if photo.ndim == 3 else np.repeat(photo[..., None], 3, axis=2))
    height, width = truth.shape[:2]
    ink = np.zeros((height, width), np.uint8)
    cv2.putText(ink, "SOLD", (width // 10, height // 2 + 40), cv2.FONT_HERSHEY_SIMPLEX, 3.2, 255, 14)
    ink = ink > 0
    image = truth.copy()
    image[ink] = (240, 230, 40)
    context = EditContext("t", "text", "remove", 0, Config(), strokes_refined=True)
    errors = {}
    for method in ("clone", "patch"):
        out = TextRemover(TextConfig(wide_fill=method))(image, ink, context)
        assert (out[~ink] == image[~ink]).all()
        errors[method] = np.abs(out.astype(int) - truth.astype(int)).mean(axis=-1)[ink].mean()
    assert errors["patch"] < 0.75 * errors["clone"], errors  # brick 8.6 against 16.0, coffee 10.8 against 16.6


def test_patchmatch_copies_no_other_letter_and_gives_the_same_bytes_twice():
    truth = np.ascontiguousarray(photos.chelsea()[100:260, 100:340])
    hole = np.zeros(truth.shape[:2], bool)
    hole[60:80, 40:200] = True  # a 20 px stroke
    letter = np.zeros_like(hole)
    letter[40:100, 200:230] = True  # the next letter, not yet filled
    image = truth.copy()
    image[hole | letter] = (255, 0, 0)
    first, second = patch_fill(image, hole, letter), patch_fill(image.copy(), hole.copy(), letter.copy())
    assert (first == second).all()
    assert (first[~hole] == image[~hole]).all()
    red = (first[..., 0] > 200) & (first[..., 1] < 60) & (first[..., 2] < 60)
    assert not red[hole].any()
    grey = patch_fill(luminance(image).astype(np.uint8), hole, letter)
    assert grey.shape == hole.shape and (grey[~hole] == luminance(image).astype(np.uint8)[~hole]).all()


def test_a_wide_hole_no_copy_fits_is_filled_from_its_edge_not_left_with_its_letters():
    # A whole line region the crop has no room to copy from: the clone used to hand the letters back.
    truth = np.ascontiguousarray(np.repeat(photos.camera()[0:120, 0:200, None], 3, axis=2))
    hole = np.zeros(truth.shape[:2], bool)
    hole[20:100, 20:180] = True
    image = truth.copy()
    image[hole] = (0, 255, 0)
    out = clone_fill(image, hole, np.zeros_like(hole))
    assert (out[~hole] == image[~hole]).all()
    assert (out[hole] != image[hole]).any(axis=-1).all()
    assert np.abs(out.astype(int) - truth.astype(int)).max(axis=-1)[hole].mean() < 12


def test_remnant_score_sees_letters_the_mask_missed_and_not_a_clean_fill():
    truth = photos.astronaut()
    image, ink, fill = caption(truth)
    region = np.zeros(ink.shape, bool)
    ys, xs = np.nonzero(ink)
    region[ys.min() - 6:ys.max() + 7, xs.min() - 6:xs.max() + 7] = True
    outline_only = ink & ~fill
    left_fill = np.where(outline_only[..., None], truth, image)  # the outline removed, the yellow letters left
    assert remnant_score(image, image, region) > 0.9
    assert remnant_score(image, left_fill, region) > 0.3
    assert abs(remnant_score(image, truth, region)) < 0.1
    # A refused edit's candidates are scored against one reference, found once.
    memo = {}
    scores = [remnant_score(image, final, region, memo=memo) for final in (image, left_fill, truth)]
    assert scores == [remnant_score(image, final, region) for final in (image, left_fill, truth)]
    assert len(memo) == 1


def seam_refusing_job(make_job):
    """A job whose image suite asks for a seam no fill meets: every edit is refused, every candidate tried."""
    return make_job(gate={"overrides": [{"suite": "image_remove", "expectation": "expect_column_values_to_be_between",
                                         "column": "seam_score", "kwargs": {"max_value": 1e-6}}]})


@pytest.fixture
def exemplar_fills(monkeypatch):
    """The mask sizes of every exemplar fill made while the test runs."""
    from tasks.clean.exemplar import Exemplar

    calls = []
    fill = Exemplar.__call__

    def counted(self, image, mask, context=None):
        calls.append(int(mask.sum()))
        return fill(self, image, mask, context)

    monkeypatch.setattr(Exemplar, "__call__", counted)
    return calls


@pytest.mark.parametrize("removal, tried", [("text", ["first", "grown", "region", "region-rebased"]),
                                            ("object", ["first", "rebased", "reseeded", "more-context"])])
def test_an_edit_the_image_suite_refuses_is_retried_and_every_attempt_recorded(make_job, tmp_path, removal, tried):
    save(tmp_path / "data" / "img.png", caption(photos.astronaut())[0])
    # A seam bound no fill meets: every candidate is tried and refused, the least refused is kept.
    job = seam_refusing_job(make_job)
    # A box with photo around the caption: the refinement cuts it to the strokes, which can grow.
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "boxes": [[30, 340, 480, 480]],
                       "removal": removal}, job)
    assert [attempt.split(":")[0] for attempt in record["attempts"]] == tried
    assert all("refused by expect_column_values_to_be_between(seam_score)" in a for a in record["attempts"])
    assert record["candidate"] in tried and record["outside_changed"] == 0


def test_the_region_candidates_fill_the_region_once(make_job, tmp_path, exemplar_fills):
    """`region` and `region-rebased` start from the same exemplar fill: it is made once per edit."""
    save(tmp_path / "data" / "img.png", caption(photos.astronaut())[0])
    job = seam_refusing_job(make_job)
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "boxes": [[30, 340, 480, 480]],
                       "removal": "text"}, job)
    assert [attempt.split(":")[0] for attempt in record["attempts"]] == ["first", "grown", "region", "region-rebased"]
    assert exemplar_fills == [(480 - 340) * (480 - 30)]  # the box, filled once for both


def test_a_drawn_text_mask_is_not_retried_on_the_same_mask_with_the_same_engine(make_job, tmp_path, exemplar_fills):
    """A drawn mask is its own region: grown within it, it is the same mask, and the same engine
    would make the same refused fill again. The region candidates (another engine) are tried."""
    image, ink, _ = caption(photos.astronaut())
    save(tmp_path / "data" / "img.png", image)
    save(tmp_path / "data" / "mask.png", ink.astype(np.uint8) * 255)
    job = seam_refusing_job(make_job)
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "mask_uri": "mask.png", "removal": "text"},
                      job)
    assert [attempt.split(":")[0] for attempt in record["attempts"]] == ["first", "region", "region-rebased"]
    assert len(exemplar_fills) == 1 and exemplar_fills[0] >= ink.sum()  # the drawn mask (bled), filled once


def test_letters_the_refinement_left_out_of_its_region_are_still_text(make_job, tmp_path, monkeypatch):
    """A line region holding a strut and a faint caption, cut to the strut: the letters are left as
    they were, and the text check, which reads the whole region the row marked, still finds them."""
    import tasks.partition as partition

    image, ink, _ = caption(photos.astronaut())
    save(tmp_path / "data" / "img.png", image)
    box = [50, 370, 520, 440]  # the caption ends near x = 390
    strut = np.zeros(ink.shape, bool)
    strut[box[1]:box[3], 480:490] = True
    strut &= cv2.dilate(ink.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    monkeypatch.setattr(partition, "refine_text_mask", lambda image, region, **settings: region & strut)
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "boxes": [box], "removal": "text"},
                      make_job(gate={"retry": False}))
    assert record["text_detected"] is True
    assert "expect_column_values_to_be_in_set(text_detected)" in record["attempts"][0]


def test_the_first_edit_the_suite_passes_is_kept(make_job, tmp_path):
    save(tmp_path / "data" / "img.png", photos.astronaut())
    record = edit_row({"image_id": "t", "_row": 0, "image_uri": "img.png", "boxes": [[100, 100, 140, 150]]}, make_job())
    *refused, passed = record["attempts"]
    assert passed.endswith(": passed") and all(": refused by " in a for a in refused)
    assert record["candidate"] == passed.split(":")[0]


def test_a_fill_on_a_diffused_base_keeps_its_grain_and_loses_its_seam():
    from tasks.clean.telea import on_diffused_base
    from tasks.measure import measure_edit

    rng = np.random.default_rng(1)
    ramp = np.linspace(60, 180, 400, dtype=np.float32)[None, :, None].repeat(300, 0).repeat(3, 2)
    photo = np.clip(ramp + rng.normal(0, 4, ramp.shape), 0, 255).astype(np.uint8)  # a smooth, grainy sky
    hole = np.zeros((300, 400), bool)
    hole[100:200, 150:260] = True
    # A texture fill whose grain is right but whose level is 25 grey levels off: an outline of the hole.
    patch = np.clip(ramp + 25 + rng.normal(0, 4, ramp.shape), 0, 255).astype(np.uint8)
    offset = np.where(hole[..., None], patch, photo)
    rebased = on_diffused_base(photo, offset, hole)
    assert (rebased[~hole] == photo[~hole]).all()
    before, after = measure_edit(photo, offset, hole), measure_edit(photo, rebased, hole)
    assert before.seam_score > 3 and after.seam_score < 1.6
    assert 0.7 <= after.noise_ratio <= 1.4  # the fill's grain kept


def translucent(photo: np.ndarray, opacity: float, text="SOLD 2-4", xy=(40, 330), size=96, colour=(230, 40, 40)):
    """`photo` with a `text` of one colour blended at `opacity`; (image, its ink pixels)."""
    layer = Image.new("L", (photo.shape[1], photo.shape[0]), 0)
    ImageDraw.Draw(layer).text(xy, text, font=ImageFont.truetype(FONT, size), fill=255)
    alpha = np.asarray(layer).astype(np.float32)[..., None] / 255 * opacity
    image = np.rint(photo * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    return image, alpha[..., 0] > 0


def test_a_semi_transparent_caption_is_unblended_back_to_the_photo_under_it():
    from tasks.clean.text import TextRemover
    from tasks.clean.unblend import unblend
    from tasks.settings import TextConfig

    truth = photos.astronaut()  # the letters cross the suit's folds and the flag's edges
    image, ink = translucent(truth, 0.45)
    mask = cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    given, recovered = unblend(image, mask)
    assert recovered.sum() > 0.4 * ink.sum(), "most of the letters' cores are given back"
    assert np.array_equal(given[~recovered], image[~recovered]), "nothing else is touched"
    error = np.abs(given.astype(np.float32) - truth)[recovered].mean()
    assert error < 6.0, f"the photo under the letters comes back within a few grey levels ({error:.1f})"
    # Against the fill alone on the same mask: the blend inverted measures what the fill can only guess.
    errors = {}
    for on in (True, False):
        out = TextRemover(TextConfig(unblend=on))(image, mask, EditContext("t", "text", "remove", 0, Config(),
                                                                            strokes_refined=True))
        assert np.array_equal(out[~mask], image[~mask])
        errors[on] = np.abs(out.astype(np.float32) - truth)[mask].mean()
    assert errors[True] < 0.6 * errors[False], errors


def test_an_opaque_caption_is_left_to_the_fill():
    from tasks.clean.unblend import unblend

    image, ink = translucent(photos.astronaut(), 1.0)
    mask = cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    given, recovered = unblend(image, mask)
    assert not recovered.any() and np.array_equal(given, image)


def test_the_fill_inside_an_outline_goes_with_it_even_in_the_photos_own_colour():
    # Dark letters at 40% over a dark coat, drawn with a light outline: the fill hardly stands apart
    # from the photo, the outline does; the outline says where the fill is.
    truth = np.clip(photos.astronaut().astype(np.int16) // 4, 0, 255).astype(np.uint8)
    image, ink, fill = caption(truth, fill=(10, 10, 10, 102), stroke=(200, 200, 200, 255), outline=1)
    ys, xs = np.nonzero(ink)
    box = np.zeros(ink.shape, bool)
    box[ys.min() - 6:ys.max() + 7, xs.min() - 6:xs.max() + 7] = True
    refined = refine_text_mask(image, box)
    assert np.count_nonzero(refined & fill) / np.count_nonzero(fill) >= 0.95


def test_a_hairline_the_mask_missed_round_a_letter_does_not_darken_its_fill():
    # An outline's outer anti-aliasing one pixel outside the hole: pinned to it, the blend's membrane
    # carried its darkness across the whole fill (48 grey levels on this wall) and drew the letter back.
    truth = np.repeat(photos.brick()[100:260, 100:340, None], 3, axis=2)
    hole = np.zeros(truth.shape[:2], bool)
    hole[50:110, 100:130] = True  # a letter's stem, 30 px wide
    edge = (cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~hole
    hairline = truth.copy()
    hairline[edge] //= 4
    offsets = [clone_fill(image, hole, np.zeros_like(hole))[hole].astype(np.float32).mean() - truth[hole].mean()
               for image in (truth, hairline)]
    assert abs(offsets[1] - offsets[0]) < 6, offsets


def test_a_clone_beside_a_letter_not_yet_filled_keeps_the_photos_colour():
    """The clone's edge is photo only: the next letter (dark ink, filled later) sits on the hole's
    edge, and a membrane pinned to it pulled the whole fill dark (36 levels off the sky, 134 beside it)."""
    truth = np.repeat(photos.camera()[0:150, 290:512, None], 3, 2)
    hole = np.zeros(truth.shape[:2], bool)
    hole[80:110, 60:100] = True
    letter = np.zeros_like(hole)
    letter[80:110, 100:112] = True
    image = truth.copy()
    image[hole | letter] = 20
    out = clone_fill(image, hole, letter)
    error = np.abs(out.astype(int) - truth.astype(int))
    assert error[hole].mean() < 4 and error[80:110, 92:100].mean() < 10


@pytest.mark.parametrize("fill", [clone_fill, membrane_fill])
def test_a_hairline_darker_in_one_channel_than_the_others_does_not_tint_the_fill(fill):
    # An outline's anti-aliased edge left one pixel outside the hole, its channels apart as JPEG
    # leaves them: outliers replaced channel by channel kept the red and blue and dropped the green,
    # and a grey wall was filled green (the coloured blobs in listing row 002).
    truth = np.repeat(photos.brick()[100:260, 100:340, None], 3, axis=2)
    hole = np.zeros(truth.shape[:2], bool)
    hole[50:110, 100:130] = True
    edge = (cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~hole
    hairline = truth.astype(np.int16)
    hairline[edge] -= np.array([12, 24, 10], np.int16)  # only the green departs past the outlier limit
    out = fill(np.clip(hairline, 0, 255).astype(np.uint8), hole, np.zeros_like(hole)).astype(np.float32)
    tint = out[hole].max(axis=-1) - out[hole].min(axis=-1)
    assert tint.mean() < 3, tint.mean()


@pytest.mark.parametrize("name", ["rocket", "chelsea"])
def test_a_saturated_caption_drawn_to_its_own_pixels_is_not_filled_back_in_its_colour(name, monkeypatch):
    # JPEG keeps colour at half resolution: a magenta caption's colour reaches a pixel past its
    # pixels, into the ring a fill is pinned to. A mask drawn to the caption's own pixels (alpha > 0)
    # was filled back a shade of magenta (remnant 0.095 on the rocket, 0.181 on the cat); filled a
    # pixel wider, it is the photo, and nothing outside the mask moves.
    def jpeg(rgb: np.ndarray) -> np.ndarray:
        _, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]

    photo = np.ascontiguousarray(getattr(photos, name)()[..., :3])
    drawn, mask, _ = caption(photo, text="FOR SALE", xy=(40, 40) if name == "rocket" else (40, 20), size=40,
                             fill=(230, 60, 160, 255), outline=0)
    image, truth = jpeg(drawn), jpeg(photo).astype(np.float32)
    context = EditContext("t", "text", "remove", 0, Config(), strokes_refined=True)
    signal = (image.astype(np.float32) - truth)[mask]

    def remnant(bleed: int) -> float:
        monkeypatch.setattr(text_engine, "BLEED", bleed)
        out = TextRemover(TextConfig())(image, mask, context)
        assert (out[~mask] == image[~mask]).all()
        left = (out.astype(np.float32) - truth)[mask]
        return float((left * signal).sum() / (signal * signal).sum())

    pinned_to_the_ring, beyond_it = remnant(0), remnant(1)
    assert pinned_to_the_ring > 0.08  # the case is real: text left by the benchmark's measure
    assert beyond_it < 0.08 and beyond_it < 0.65 * pinned_to_the_ring, (pinned_to_the_ring, beyond_it)
