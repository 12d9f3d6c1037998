"""Text strokes and the `text` engine, on real photos with text drawn by PIL (truth kept)."""

from __future__ import annotations

import difflib
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from tasks.clean import EditContext
from tasks.clean.text import TextRemover
from tasks.config import Config
from tasks.detect.text import text_reader
from tasks.masks import box_mask
from tasks.masks_text import refine_text_mask

STYLES = {
    # name: (fill RGBA, outline width, outline RGBA)
    "solid-light": ((255, 255, 255, 255), 0, None),
    "solid-dark": ((10, 10, 10, 255), 0, None),
    "outlined": ((255, 255, 255, 255), 2, (0, 0, 0, 255)),
    "watermark-50": ((255, 255, 255, 128), 0, None),
    "solid-yellow": ((255, 210, 0, 255), 0, None),
    "outlined-3": ((255, 255, 255, 255), 3, (0, 0, 0, 255)),
}
CASES = [  # photo, style, font size, text, top-left
    ("astronaut", "solid-light", 22, "Apollo Mission", (30, 420)),
    ("coffee", "solid-dark", 30, "Fresh Brew", (330, 40)),
    ("chelsea", "outlined", 32, "Tabby Cat", (40, 20)),
    ("rocket", "watermark-50", 40, "STOCKPHOTO", (60, 330)),
]

# Share of the padded box the refined mask may take (the ideal, the text's pixels grown by 2 px, is
# ~0.45-0.55 here). The outlined caption over the cat's fur is not cut down yet: the refinement
# finds too many candidate strokes there and keeps the whole box, the safe fallback.
MAX_SHARE = {"solid-light": 0.7, "solid-dark": 0.85, "outlined": 1.0, "watermark-50": 0.8}


def draw_text(photo: np.ndarray, text: str, xy, size: int, style: str) -> tuple[np.ndarray, list[int]]:
    """`photo` with `text` composited on it, and the text's tight box [x0, y0, x1, y1]."""
    fill, width, outline = STYLES[style]
    font = ImageFont.load_default(size=size)
    base = Image.fromarray(photo).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(xy, text, font=font, fill=fill, stroke_width=width, stroke_fill=outline)
    drawn = np.asarray(Image.alpha_composite(base, layer).convert("L" if photo.ndim == 2 else "RGB"))
    return drawn, list(ImageDraw.Draw(layer).textbbox(xy, text, font=font, stroke_width=width))


def photo(name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(data, name)()


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a != b
    return diff.any(axis=-1) if diff.ndim == 3 else diff


def padded_box(box, pad, shape):
    x0, y0, x1, y1 = box
    return box_mask([[x0 - pad, y0 - pad, x1 + pad, y1 + pad]], (shape[1], shape[0]))


@pytest.fixture(scope="module")
def ocr():
    return text_reader()


def reads(ocr, image: np.ndarray, text: str) -> float:
    """Best fuzzy match (0-1, case-insensitive) of `text` in what the OCR reads in `image`."""
    found = ocr(image).txts or ()
    joined = " ".join(found).lower()
    return max([difflib.SequenceMatcher(None, text.lower(), t.lower()).ratio() for t in (*found, joined)], default=0.0)


@pytest.mark.parametrize("name, style, size, text, xy", CASES, ids=[c[1] for c in CASES])
def test_refined_mask_covers_the_text_and_is_much_smaller_than_the_box(name, style, size, text, xy):
    truth = photo(name)
    drawn, box = draw_text(truth, text, xy, size, style)
    box_region = padded_box(box, 6, truth.shape)
    ink = changed(drawn, truth)
    assert not (ink & ~box_region).any()

    refined = refine_text_mask(drawn, box_region)

    assert not (refined & ~box_region).any()
    coverage = np.count_nonzero(refined & ink) / np.count_nonzero(ink)
    assert coverage >= 0.98, f"{style}: refined mask covers {coverage:.1%} of the text's pixels"
    assert refined.sum() <= MAX_SHARE[style] * box_region.sum(), f"{style}: {refined.sum() / box_region.sum():.0%} of the box"


def test_refinement_keeps_the_region_whole_when_it_finds_no_text():
    truth = photo("astronaut")
    region = box_mask([[300, 300, 380, 340]], (512, 512))
    flat = np.full_like(truth, 128)
    assert np.array_equal(refine_text_mask(flat, region), region)  # nothing to cut down to: never under-remove
    assert not refine_text_mask(truth, np.zeros(region.shape, bool)).any()


HARD_CASES = [  # photo, style, font size, text, top-left, region's reach (px) right of and below the text,
    # least share of the ink covered, most share of the region
    ("camera", "solid-light", 30, "Camera Man", (250, 420), (6, 6), 0.98, 0.8),  # a grey photo
    # The ring holds bright coins and the black between them: the black between the letters stands
    # out from the ring's mean as much as the letters do, but is common in the ring. The rule that
    # looked at the mean only kept both and gave up on the whole box (share 1.00).
    ("coins", "solid-yellow", 34, "Holiday 2024", (30, 146), (6, 6), 0.98, 0.8),
    # A black outline crossing the cameraman's dark coat and the light sky: over the coat it has no
    # contrast of its own, over the sky it is the letters' shape, and left behind there it reads as
    # hollow letters (91% of the ink covered without the touching-outline rule).
    # Every set apart from the ring is kept, both polarities (issue 13: a fill inside an outline was
    # dropped): 71% of the box here.
    ("camera", "outlined-3", 52, "Limited Offer", (12, 216), (6, 6), 0.95, 0.75),
    # A region that reaches 40 px below a caption over the sky, into the cameraman's dark head (as a
    # detector's line region may): the head stands out from the ring more than the white letters
    # do, but fills only part of the line's length. Without that test the letters were dropped
    # for it (33% of the ink covered).
    ("camera", "solid-light", 44, "Summer Sale", (118, 56), (6, 40), 0.98, 0.6),
    # A box drawn 250 px longer than its word: the letters cover a small part of the line, which
    # ranks them lower but must not make them "no text" (the whole box was filled).
    ("rocket", "solid-light", 26, "SALE", (40, 300), (250, 6), 0.98, 0.5),
]


@pytest.mark.parametrize("name, style, size, text, xy, reach, cover, share", HARD_CASES,
                         ids=["grey-photo", "light-among-coins", "outline-over-its-own-colour", "region-over-a-head",
                              "box-longer-than-its-word"])
def test_refinement_on_hard_backgrounds(name, style, size, text, xy, reach, cover, share):
    truth = photo(name)
    drawn, box = draw_text(truth, text, xy, size, style)
    x0, y0, x1, y1 = box
    region = box_mask([[x0 - 6, y0 - 6, x1 + reach[0], y1 + reach[1]]], (truth.shape[1], truth.shape[0]))
    ink = changed(drawn, truth)
    refined = refine_text_mask(drawn, region)
    assert np.count_nonzero(refined & ink) / np.count_nonzero(ink) >= cover
    assert refined.sum() < share * region.sum(), f"{refined.sum() / region.sum():.0%} of the box"


INK_CASES = [  # photo, (fill RGBA, outline width, outline RGBA), font size, text, top-left
    ("chelsea", ((245, 245, 240, 255), 0, None), 48, "SOLD", (150, 120)),  # white over fur
    ("astronaut", ((245, 245, 240, 255), 2, (15, 15, 15, 255)), 52, "FOR SALE", (40, 300)),  # outlined, over the suit
    ("coffee", ((220, 30, 30, 255), 0, None), 48, "SOLD 2", (60, 250)),  # saturated red: JPEG-like chroma spread
    ("rocket", ((245, 245, 240, 255), 0, None), 44, "OPEN", (60, 360)),  # white over the launch tower
]


@pytest.mark.parametrize("name, style, size, text, xy", INK_CASES,
                         ids=["white-over-fur", "outlined-over-a-suit", "red-over-a-cup", "white-over-a-tower"])
def test_refinement_leaves_the_photo_between_opaque_letters(monkeypatch, name, style, size, text, xy):
    """On a busy photo the sets that stand apart from the ring took the photo between the letters
    too (0.29, 0.11, 0.16 and 0.18 of the ink's area more than 6 px from it before `near_ink`): an
    opaque ink is one colour, and the photo blobs away from it are given back, every ink pixel kept."""
    monkeypatch.setitem(STYLES, "ink", style)
    truth = photo(name)
    drawn, (x0, y0, x1, y1) = draw_text(truth, text, xy, size, "ink")
    region = box_mask([[x0 - 6, y0 - 6, x1 + 6, y1 + 6]], (truth.shape[1], truth.shape[0]))
    ink = changed(drawn, truth)
    refined = refine_text_mask(drawn, region)
    beside = cv2.dilate(ink.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool)
    assert np.count_nonzero(refined & ink) == np.count_nonzero(ink)  # never under-remove
    assert np.count_nonzero(refined & ~beside) < 0.08 * np.count_nonzero(ink)


@pytest.mark.parametrize("name, style, size, text, xy", CASES, ids=[c[1] for c in CASES])
def test_text_engine_leaves_nothing_readable_and_only_touches_strokes(ocr, name, style, size, text, xy):
    truth = photo(name)
    drawn, box = draw_text(truth, text, xy, size, style)
    region = padded_box(box, 6, truth.shape)
    config = Config()
    engine = TextRemover(config.text)
    strokes = engine.strokes(drawn, region)

    out = engine(drawn, region, EditContext("t", "text", "remove", 0, config))

    assert out.shape == drawn.shape and out.dtype == drawn.dtype
    assert not changed(out, drawn)[~strokes].any(), "pixels outside the refined strokes must come back unchanged"
    x0, y0, x1, y1 = box
    window = (slice(max(0, y0 - 30), y1 + 30), slice(max(0, x0 - 30), x1 + 30))
    assert reads(ocr, drawn[window], text) > 0.8  # the OCR reads the drawn text...
    assert reads(ocr, out[window], text) < 0.5, "the OCR still reads the removed text"  # ...and not after removal
    # The fill is closer to the photo than the text was.
    error = lambda a: np.abs(a.astype(np.int16) - truth.astype(np.int16))[region].mean()
    assert error(out) < error(drawn)
