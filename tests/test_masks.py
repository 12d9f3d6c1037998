import io

import numpy as np
import pytest
from PIL import Image

from tasks.masks import box_mask, build_mask, mask_components, polygon_mask
from tasks.uris import RowError


def test_box_covers_floor_to_ceil_and_clips():
    mask = box_mask([[1.5, 0, 3, 2], [8, 8, 20, 20]], (10, 10))
    assert mask[0:2, 1:3].all() and mask[8:10, 8:10].all()
    assert mask.sum() == 4 + 4


@pytest.mark.parametrize(
    "box, message",
    [([5, 5, 2, 8], "x0 < x1"), ([20, 20, 30, 30], "outside the 10x10 image"), ([0, 0, 1], "4 finite numbers")],
)
def test_bad_boxes_name_the_box(box, message):
    with pytest.raises(RowError, match=message):
        box_mask([[0, 0, 1, 1], box], (10, 10))


def test_polygon_fill_and_errors():
    mask = polygon_mask([[0, 0, 9, 0, 0, 9]], (10, 10))
    assert mask[0, 0] and mask[0, 9] and mask[9, 0] and not mask[9, 9]
    with pytest.raises(RowError, match="polygon 0 must be"):
        polygon_mask([[0, 0, 1, 1]], (10, 10))
    with pytest.raises(RowError, match="outside"):
        polygon_mask([[20, 20, 30, 20, 30, 30]], (10, 10))


def test_union_of_file_boxes_and_polygons():
    file_mask = np.zeros((10, 10), np.uint8)
    file_mask[0, 0] = 255
    buffer = io.BytesIO()
    Image.fromarray(file_mask).save(buffer, format="PNG")
    row = {"mask_uri": "m.png", "boxes": [[5, 5, 6, 6]], "polygons": [[8, 8, 9, 8, 9, 9, 8, 9]]}
    mask = build_mask(row, (10, 10), lambda uri: buffer.getvalue(), 10**8)
    assert mask[0, 0] and mask[5, 5] and mask[8:10, 8:10].all()
    assert mask.sum() == 1 + 1 + 4


def test_components_are_cropped_with_margin_and_merged_when_close():
    mask = np.zeros((100, 100), bool)
    mask[10:12, 10:12] = True
    mask[14:16, 14:16] = True  # within the margin of the first: one crop
    mask[80:82, 80:82] = True
    crops = sorted(mask_components(mask, margin=3), key=lambda c: c[0].start)
    assert crops == [(slice(7, 19), slice(7, 19)), (slice(77, 85), slice(77, 85))]
