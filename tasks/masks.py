"""Find: the edit mask of a row, as the union of its mask file, boxes and polygons.

All geometry is in the upright frame (after EXIF orientation), in pixels. A box `[x0, y0, x1, y1]`
covers the pixels whose centres lie in `[floor(x0), ceil(x1)) x [floor(y0), ceil(y1))`; a polygon
is filled with its boundary included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from tasks.images import decode_mask
from tasks.uris import RowError


def mask_png(mask: np.ndarray) -> bytes:
    """`mask` (HxW bool) as a 1-bit PNG: what the Find step really used, kept for the report."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask).convert("1").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def mask_from_png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("1"), dtype=bool)


def box_mask(boxes: Sequence[Sequence[float]], size: tuple[int, int]) -> np.ndarray:
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    for i, box in enumerate(boxes):
        if box is None or len(box) != 4 or any(v is None or not math.isfinite(v) for v in box):
            raise RowError(f"box {i} {list(box) if box is not None else None} must be 4 finite numbers [x0, y0, x1, y1]")
        x0, y0, x1, y1 = box
        if not (x0 < x1 and y0 < y1):
            raise RowError(f"box {i} {list(box)} must have x0 < x1 and y0 < y1")
        left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
        right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        if left >= right or top >= bottom:
            raise RowError(f"box {i} {list(box)} lies outside the {width}x{height} image")
        mask[top:bottom, left:right] = True
    return mask


def polygon_mask(polygons: Sequence[Sequence[float]], size: tuple[int, int]) -> np.ndarray:
    width, height = size
    canvas = np.zeros((height, width), dtype=np.uint8)
    for i, flat in enumerate(polygons):
        if flat is None or len(flat) < 6 or len(flat) % 2 or any(v is None or not math.isfinite(v) for v in flat):
            raise RowError(f"polygon {i} must be a flat list of at least 3 finite x, y pairs")
        points = np.round(np.asarray(flat, dtype=np.float64).reshape(-1, 2)).astype(np.int32)
        xs, ys = points[:, 0], points[:, 1]
        if xs.max() < 0 or ys.max() < 0 or xs.min() >= width or ys.min() >= height:
            raise RowError(f"polygon {i} lies outside the {width}x{height} image")
        cv2.fillPoly(canvas, [points], 1)
    return canvas.astype(bool)


def build_masks(
    row: dict,
    size: tuple[int, int],
    read_mask_bytes: Callable[[str], bytes],
    max_pixels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(drawn, shapes): the row's mask file, and its boxes and polygons, as boolean HxW arrays.

    They are kept apart because they mean different things for text: a mask the user drew is the
    floor of the edit (every pixel of it is edited, none is given back), while a box or polygon only
    says where the letters are, and is cut down to them. `read_mask_bytes(mask_uri)` fetches the mask
    file; it is passed in so that URI resolution and storage stay in one place.
    """
    width, height = size
    drawn = np.zeros((height, width), dtype=bool)
    shapes = np.zeros((height, width), dtype=bool)
    if row.get("mask_uri"):
        drawn |= decode_mask(read_mask_bytes(row["mask_uri"]), size, max_pixels)
    if row.get("boxes"):
        shapes |= box_mask(row["boxes"], size)
    if row.get("polygons"):
        shapes |= polygon_mask(row["polygons"], size)
    return drawn, shapes


def build_mask(
    row: dict,
    size: tuple[int, int],
    read_mask_bytes: Callable[[str], bytes],
    max_pixels: int,
) -> np.ndarray:
    """The union of everything the row marks for editing, as a boolean HxW array."""
    drawn, shapes = build_masks(row, size, read_mask_bytes, max_pixels)
    return drawn | shapes


def mask_components(mask: np.ndarray, margin: int) -> list[tuple[slice, slice]]:
    """Crops around each connected component of `mask`, grown by `margin`, merged where they overlap.

    Engines work on these crops at full resolution (IOPaint's "Crop" strategy): the work scales
    with the edit, not the photo, and nothing is ever downscaled.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    # Labelling writes a 32-bit label per pixel: only the mask's bounding box is worth labelling.
    top, left = int(rows[0]), int(cols[0])
    inside = np.ascontiguousarray(mask[top : rows[-1] + 1, left : cols[-1] + 1], dtype=np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    height, width = mask.shape
    boxes = [
        [max(0, left + x - margin), max(0, top + y - margin), min(width, left + x + w + margin),
         min(height, top + y + h + margin)]
        for x, y, w, h, _ in stats[1:count]
    ]
    merged = True
    while merged:  # few components per image: the quadratic merge is cheaper than anything clever
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(slice(y0, y1), slice(x0, x1)) for x0, y0, x1, y1 in boxes]


def nearest_labels(labels: np.ndarray) -> np.ndarray:
    """Every pixel given the label of the nearest labelled pixel (`labels` > 0; Euclidean)."""
    # Each zero pixel of the transform's input is a seed of its own; what is nearest it takes its label.
    _, nearest = cv2.distanceTransformWithLabels((labels <= 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    label_of_seed = np.zeros(int(nearest.max()) + 1, dtype=labels.dtype)
    label_of_seed[nearest[labels > 0]] = labels[labels > 0]
    return label_of_seed[nearest]


def feather_weight(mask: np.ndarray, feather: float) -> np.ndarray:
    """Float32 weight in [0, 1]: 0 outside `mask`, rising to 1 over `feather` px inside its edge.

    Enhancements blend in with this weight, so they fade in from the boundary rather than start
    with a step (and never reach outside the mask).
    """
    if feather <= 0:
        return mask.astype(np.float32)
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(depth / feather, 0, 1).astype(np.float32)
