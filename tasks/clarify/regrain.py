"""`regrain` (the default clarifier): give the filled region the photo's own grain.

Noise-level-function matching (after C. Liu et al., "Automatic Estimation and Removal of Noise
from a Single Image", PAMI 2008), with the grain itself taken from the photo, as image quilting
takes texture (A. Efros, W. Freeman, SIGGRAPH 2001):

1. Around each mask component (a crop at full resolution), split the image into a smooth base
   and two detail bands: fine (image minus a Gaussian of sigma 1) and mid (sigma 1 minus sigma 3).
2. The photo's grain, from the known pixels of the crop: the RMS Laplacian over all but the
   strongest 0.5% of Laplacian responses, and the mean |Immerkaer| response over all but the
   strongest 2% (edges of things, not grain) -- the Measure step's texture and noise probes -- per
   intensity bin, on luminance as Measure reads it: the camera's noise level function (sensors are
   noisier in the highlights; the copied grain keeps each channel's own share of it).
3. Grain to add: blocks of both bands cut from known windows of the crop (their rare strongest
   responses clipped; windows within the mid band's reach of a line, a response over 12 times the
   calm pixels' mean, only where the crop has no other) and cross-faded where they overlap (their squares sum to 1, so the blend
   keeps the grain's variance). Copied grain keeps what a parametric model loses: the blotchiness
   that demosaicing and JPEG give it, its correlation across channels, and its heavy tails.
4. A fill within 15-20% of the target by both probes is left alone, and so is a fill from an
   engine that copies grain (exemplar, lama) whose noise is within that band and whose texture is
   not over it: its grain is the camera's, and a lower texture level is the hidden content's, which
   the surroundings do not know (a copied fill over the band is brought down to its top, with no
   grain on it). Otherwise
   it keeps as much of
   its own detail as fits under the target by both (fast marching leaves ripples too sharp for how
   smooth it is), and the two grain bands make up the rest, with the gains that meet both probes
   at once: powers of independent layers add, and the power of the two bands of one block is a
   quadratic form in their gains (they are correlated), solved per intensity bin, one gain for
   all channels. The grain's colour part (what is left once its luminance is taken away) is then
   held to the colour the photo's detail has: a JPEG's calm windows carry more colour for their
   grey than its texture, and amplified they would speck the fill.
5. Feather the change over a few pixels inside the mask edge, so no seam appears, and round. Where
   the fill's detail was scaled down, its levels are read once more after rounding, which adds
   noise of its own to a nearly flat fill, and the detail is scaled down again where they are
   still over the target.

Blocks are drawn by a torch generator seeded with the row's seed: a rerun gives identical bytes.

On CUDA the crops of a partition's images are re-grained in batches (`regrain.batch` crops of one
channel count, statistics stride and block size, each placed in the top-left corner of one padded
stack of at most BATCH_PIXELS): one kernel serves a batch instead of one crop, and the step waits
on the GPU a few times per batch, not per crop. Every step reads only its own crop's pixels (reflected at the crop's own
edges, statistics over its own masks, blocks from its own windows, its own generator), so a
batch changes nothing but the order of some float64 sums. On the CPU each crop is its own batch
and its bytes never depend on its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from tasks.device import pick_device
from tasks.masks import mask_components
from tasks.probes import IMMERKAER_KERNEL, LAPLACIAN_KERNEL, LUMA
from tasks.settings import RegrainConfig
from tasks.stages import BatchesOnDevice, EditContext, EditStage

BANDS = (1.0, 3.0)  # Gaussian sigmas: fine = image - G(1), mid = G(1) - G(3), base = G(3)
BINS = 6  # intensity bins of the noise level function
MIN_SAMPLES = 64  # fewer known pixels than this teach nothing: the crop is left as it is
# A CUDA batch's padded stack stays under this many pixels: about 570 bytes of float64 planes per
# pixel (1.5 GiB for a stack of 16 crops of 0.17 MP on an H200), so about 4.5 GiB at most.
BATCH_PIXELS = 8_000_000
MIN_BLOCK = 4  # the smallest block of grain (a quarter of it cross-fades); a thinner crop is left as it is
POOLING = 1000  # pixels' worth of weight the crop's overall level has in each intensity bin
THIN_HOLE = 2 * BANDS[1]  # px from the hole's edge to its middle: a thinner hole gets fine grain only
MAX_GAIN = 4.0  # a copied band is never amplified more: past that, its windows are not this grain
STRUCTURE = 12.0  # a response this many times the calm pixels' mean is a line, not grain
MIN_TYPICAL = 0.5  # grey levels: the mean response of a clipped, flat sky is no scale
CLIP_QUANTILE = 0.999  # copied detail beyond this quantile of the calm pixels' is clipped
STRIDE = 2  # statistics read on every 2nd pixel of each axis...
MIN_STRIDED = 1024  # ...when the hole still has this many of them
EDGE_QUANTILE = 0.98  # stronger Laplacian responses are structure, not grain...
TEXTURE_QUANTILE = 0.995  # ...but the texture level counts all below this one
LEAVE_ALONE = (0.85, 1.2)  # a fill whose levels are within this ratio of the photo's keeps them
# float64: a parallel reduction sums in an order that depends on the thread count, and float32
# rounding would then flip a few output pixels between a laptop and a Dask worker. In float64 the
# differences stay far below half a grey level, so a release is the same bytes everywhere.
DTYPE = torch.float64


@dataclass
class CropJob:
    """One mask component to re-grain: its crop (HxWxC or HxW uint8), the hole in it, the seed of
    its blocks, and whether its fill came from an engine that copies grain (see step 4)."""

    crop: np.ndarray
    hole: np.ndarray
    seed: int
    fill_has_grain: bool = False


def _cpu_kernels(device: torch.device) -> bool:
    """Whether to use the CPU's kernels (OpenCV, numpy, selections), crop by crop; elsewhere the
    whole batch goes through torch's (tests switch this off to run the device's path on the CPU)."""
    return device.type == "cpu"


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=DTYPE)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _reflect_pad(x: torch.Tensor, sizes: list[int], pad: int, dim: int) -> torch.Tensor:
    """`x` (B, K, H, W) grown by `pad` at both ends of `dim` (2 or 3), each crop's axis of length
    `sizes[b]` reflected at its own edges as OpenCV's BORDER_REFLECT_101 does (F.pad's 'reflect'),
    as often as it takes: the reflection is periodic, of period 2(length - 1). Positions between a
    crop's end and the batch's hold reflections too; nothing reads them back."""
    length = x.shape[dim]
    index = torch.arange(-pad, length + pad, device=x.device)[None]
    limit = torch.tensor(sizes, device=x.device)[:, None]
    period = (2 * (limit - 1)).clamp(min=1)
    index = torch.remainder(index, period)
    index = torch.where(index >= limit, period - index, index)
    shape = list(x.shape)
    shape[dim] = index.shape[1]
    view = (len(sizes), 1, -1, 1) if dim == 2 else (len(sizes), 1, 1, -1)
    return torch.gather(x, dim, index.reshape(view).expand(shape))


def _stacked(crops: list[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    """The results of the crops of a batch, each in the leading corner of one array of `shape`
    (B, ...): (K, h, w) in (B, K, H, W), say."""
    if len(crops) == 1 and tuple(crops[0].shape) == tuple(shape[1:]):
        return crops[0][None]  # one crop fills its batch: no copy
    out = torch.zeros(shape, dtype=crops[0].dtype)
    for b, crop in enumerate(crops):
        out[(b, *(slice(0, n) for n in crop.shape))] = crop
    return out


def _blur(x: torch.Tensor, sigma: float, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Separable Gaussian of each crop of (B, C, H, W), reflected at its own edges.

    On the CPU, OpenCV's separable filter, crop by crop: torch has no fast float64 convolution
    there, and OpenCV's row-buffered pass is 5x faster than even torch's shifted sums (the pass goes
    through cache, not through memory once per tap). Elsewhere, a sum of shifted copies over the
    whole batch. Either way each output is a fixed sequence of products, so the bytes do not depend
    on the thread count or the batch; the two differ by 1e-13, far below the half grey level that
    rounding would need to flip.
    """
    if _cpu_kernels(x.device):
        kernel = _gaussian_kernel(sigma).numpy()
        blurred = [torch.from_numpy(np.stack([
            cv2.sepFilter2D(plane, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
            for plane in x[b, :, :height, :width].numpy()])) for b, (height, width) in enumerate(sizes)]
        return _stacked(blurred, x.shape)
    kernel = _gaussian_kernel(sigma).tolist()
    radius = len(kernel) // 2
    height, width = x.shape[2:]
    padded = _reflect_pad(x, [w for _, w in sizes], radius, 3)
    across = padded[..., :width] * kernel[0]
    for tap in range(1, len(kernel)):
        across.add_(padded[..., tap : tap + width], alpha=kernel[tap])
    padded = _reflect_pad(across, [h for h, _ in sizes], radius, 2)
    down = padded[:, :, :height] * kernel[0]
    for tap in range(1, len(kernel)):
        down.add_(padded[:, :, tap : tap + height], alpha=kernel[tap])
    return down


# The two probes of the Measure step (`tasks.probes`): the 4-neighbour Laplacian (texture) and
# Immerkaer's mask (noise), in float64 for OpenCV on the CPU; `_probes` computes the same by
# shifted sums elsewhere.
_LAPLACIAN_NP, _IMMERKAER_NP = (kernel.astype(np.float64) for kernel in (LAPLACIAN_KERNEL, IMMERKAER_KERNEL))


def _strided(length: int, step: int) -> int:
    return -(-length // step)


def _probes(x: torch.Tensor, sizes: list[tuple[int, int]], step: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The Laplacian and Immerkaer responses of each crop of (B, C, H, W), reflected at its own
    edges, at every `step`-th pixel of each axis (OpenCV's filter crop by crop on the CPU, shifted
    sums over the batch elsewhere, for the reasons `_blur` gives)."""
    batch, channels, height, width = x.shape
    if _cpu_kernels(x.device):
        shape = (batch, channels, _strided(height, step), _strided(width, step))
        planes = [np.ascontiguousarray(x[b, :, :h, :w].numpy()) for b, (h, w) in enumerate(sizes)]
        return tuple(_stacked([torch.from_numpy(np.stack([
            cv2.filter2D(plane, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT_101)[::step, ::step]
            for plane in crop])) for crop in planes], shape) for kernel in (_LAPLACIAN_NP, _IMMERKAER_NP))
    p = _reflect_pad(_reflect_pad(x, [w for _, w in sizes], 1, 3), [h for h, _ in sizes], 1, 2)

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return p[:, :, 1 + dy : 1 + dy + height : step, 1 + dx : 1 + dx + width : step]

    centre = shifted(0, 0)
    edges = shifted(-1, 0) + shifted(1, 0) + shifted(0, -1) + shifted(0, 1)
    corners = shifted(-1, -1) + shifted(-1, 1) + shifted(1, -1) + shifted(1, 1)
    return edges - 4 * centre, corners - 2 * edges + 4 * centre


def _per_bin(values: torch.Tensor, bins: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of (B, K, h, w) `values` per (intensity bin, channel) over each crop's `region`
    (B, h, w), as (B, BINS, K)."""
    batch, count = values.shape[:2]
    if _cpu_kernels(values.device):
        tables = []
        for b in range(batch):
            selected = values[b][:, region[b]]  # (K, n)
            index = bins[b][region[b]]
            counts = torch.bincount(index, minlength=BINS).to(DTYPE)
            sums = torch.zeros((BINS, count), dtype=DTYPE).index_add_(0, index, selected.T)
            tables.append(_pool(sums, counts, selected.mean(dim=1)))
        return torch.stack(tables)
    # CUDA's index_add_ and bincount add with atomics, in no fixed order: a matrix product does not.
    member = F.one_hot(torch.where(region, bins, BINS).flatten(1), BINS + 1)[..., :BINS].to(DTYPE)  # (B, n, BINS)
    counts = member.sum(dim=1)  # (B, BINS)
    sums = member.transpose(1, 2) @ values.flatten(2).transpose(1, 2)  # (B, BINS, K)
    overall = sums.sum(dim=1) / counts.sum(dim=1, keepdim=True)
    return _pool(sums, counts, overall)


def _pool(sums: torch.Tensor, counts: torch.Tensor, overall: torch.Tensor) -> torch.Tensor:
    # Partial pooling: a bin's own level counts as much as POOLING pixels of the overall level, so
    # a thin bin (a few highlights on a texture) cannot swing the grain on its own.
    return (sums + POOLING * overall[..., None, :]) / (counts[..., None] + POOLING)


def _quantiles(values: torch.Tensor, member: torch.Tensor, counts: list[int], qs: tuple[float, ...]) -> list[torch.Tensor]:
    """The `q` quantile (the nearest rank below) of each crop's rows of (B, R, n) `values` over
    its `member` (B, n) pixels, whose numbers are `counts`, as (B, R) for each q of `qs`.

    On the CPU a selection in linear time per crop (torch.quantile sorts); on CUDA one top-k for the
    whole batch: the rank-th smallest is the (n - rank + 1)-th largest, and q is near 1."""
    if min(counts) < 1:  # a device-side index of -1 would poison the CUDA context, not just fail
        raise ValueError(f"a crop has no pixel to take a quantile of (counts {counts})")
    ranks = [[max(1, min(n, int(q * (n - 1)) + 1)) for n in counts] for q in qs]
    if _cpu_kernels(values.device):
        return [torch.stack([values[b][:, member[b]].kthvalue(rank[b], dim=1).values for b in range(len(counts))])
                for rank in ranks]
    from_top = [[n - r + 1 for n, r in zip(counts, rank)] for rank in ranks]
    largest = values.masked_fill(~member[:, None], -math.inf).topk(max(map(max, from_top)), dim=2).values
    return [largest.gather(2, torch.tensor(k, device=values.device)[:, None, None].expand(-1, values.shape[1], 1) - 1)[..., 0]
            for k in from_top]


def _windows(x: torch.Tensor, tops: list[int], lefts: list[int], height: int, width: int) -> torch.Tensor:
    """(B, K, height, width) windows of (B, K, H, W) `x`, crop b's from (tops[b], lefts[b]);
    rows and columns past `x`'s edge repeat its last ones. Past a crop's own window they hold
    other pixels of the stack: callers mask them or never read them back."""
    if x.shape[0] == 1 and tops[0] + height <= x.shape[2] and lefts[0] + width <= x.shape[3]:
        return x[:, :, tops[0] : tops[0] + height, lefts[0] : lefts[0] + width]
    device = x.device
    rows = (torch.tensor(tops, device=device)[:, None] + torch.arange(height, device=device)).clamp(max=x.shape[2] - 1)
    cols = (torch.tensor(lefts, device=device)[:, None] + torch.arange(width, device=device)).clamp(max=x.shape[3] - 1)
    batch, channels = x.shape[:2]
    x = torch.gather(x, 2, rows[:, None, :, None].expand(batch, channels, height, x.shape[3]))
    return torch.gather(x, 3, cols[:, None, None, :].expand(batch, channels, height, width))


def _crossfade_window(block: int, overlap: int, device) -> torch.Tensor:
    """(block, block) window, flat in the middle, rising as a sine and falling as a cosine over
    `overlap` pixels at each side: where two blocks overlap their squares sum to 1, so blending
    independent grain keeps its variance."""
    n = torch.arange(block, dtype=DTYPE, device=device)
    w = torch.ones(block, dtype=DTYPE, device=device)
    if overlap > 0:
        ramp = torch.sin(math.pi / 2 * (n[:overlap] + 0.5) / overlap)
        w[:overlap], w[block - overlap :] = ramp, ramp.flip(0)
    return w[:, None] * w[None, :]


def _block_side(block: int, height: int, width: int) -> int:
    return max(MIN_BLOCK, min(block, height, width) // 4 * 4)


@dataclass
class _Grid:
    """Where one crop's grain blocks go: a grid from (top, left), `rows` x `cols` blocks."""

    top: int
    left: int
    rows: int
    cols: int


def _grid(ys: np.ndarray, xs: np.ndarray, block: int) -> _Grid:
    """The block grid over a hole whose rows are `ys` and columns `xs`: it reaches `overlap` beyond
    the hole, so the hole never lies in an outer ramp (and the hole's box grown by a pixel, where
    the grain is read, lies in it)."""
    overlap, step = block // 4, block - block // 4
    top, left = int(ys[0]) - overlap, int(xs[0]) - overlap
    rows = max(1, math.ceil((int(ys[-1]) + 1 + overlap - top - block) / step) + 1)
    cols = max(1, math.ceil((int(xs[-1]) + 1 + overlap - left - block) / step) + 1)
    return _Grid(top, left, rows, cols)


def quilt_grain(detail: torch.Tensor, source: torch.Tensor, sizes: list[tuple[int, int]], grids: list[_Grid],
                boxes: list[tuple[slice, slice]], block: int, generators: list) -> torch.Tensor:
    """For each crop of the batch, a field like its `detail` (B, K, H, W) over its box (which
    holds its hole): blocks cut from windows that lie wholly in its `source` (B, H, W) where
    possible, placed on its grid and cross-faded where they overlap. (B, K, box height, box width),
    each crop's field in the top-left corner."""
    batch, channels, _, width = detail.shape
    device = detail.device
    overlap = block // 4  # a quarter of a block cross-fades: each pixel is made of 1 to 4 blocks
    step = block - overlap
    outside = F.pad((~source).to(torch.int32).cumsum(1).cumsum(2), (1, 0, 1, 0))
    bad = outside[:, block:, block:] - outside[:, :-block, block:] - outside[:, block:, :-block] + outside[:, :-block, :-block]
    if batch > 1:  # only windows wholly in their own crop
        last_y = torch.tensor([h - block for h, _ in sizes], device=device)[:, None]
        last_x = torch.tensor([w - block for _, w in sizes], device=device)[:, None]
        fits_y = torch.arange(bad.shape[1], device=device)[None] <= last_y
        fits_x = torch.arange(bad.shape[2], device=device)[None] <= last_x
        bad = bad.masked_fill(~(fits_y[:, :, None] & fits_x[:, None, :]), block * block + 1)
    candidates = (bad == bad.flatten(1).min(dim=1).values[:, None, None]).flatten(1)  # (B, windows)
    counts = candidates.sum(dim=1).tolist()
    # The k-th candidate in reading order of each crop: as torch.nonzero would list them.
    rows, cols = max(g.rows for g in grids), max(g.cols for g in grids)
    picks = torch.zeros((batch, rows, cols), dtype=torch.int64)
    for b, (grid, generator) in enumerate(zip(grids, generators)):
        picks[b, : grid.rows, : grid.cols] = torch.randint(counts[b], (grid.rows, grid.cols), generator=generator)
    windows = torch.searchsorted(candidates.cumsum(dim=1), picks.flatten(1).to(device) + 1)  # (B, blocks)
    windows = (windows // bad.shape[2]) * width + windows % bad.shape[2]  # top-left pixel of each, flat
    offsets = torch.arange(block, device=device)
    within = offsets[:, None] * width + offsets[None, :]  # (block, block)
    # Blocks are copied in float32, half the bytes of this, the step's largest copy. Still the same
    # bytes on every machine: a cast, a product and the fold's sums in a fixed order all round the
    # same way everywhere (it is reductions in a varying order that float64 guards against).
    source_grain = detail.to(torch.float32).reshape(batch, channels, -1)
    flat = within[None, :, :, None] + windows[:, None, None, :]  # (B, block, block, blocks)
    if _cpu_kernels(device):  # numpy's take gathers 2.5x faster than torch's indexing there
        columns = _stacked([torch.from_numpy(np.take(source_grain[b].numpy(), flat[b].numpy(), axis=1))
                            for b in range(batch)], (batch, channels, *flat.shape[1:]))
    else:
        columns = torch.gather(source_grain, 2, flat.reshape(batch, 1, -1).expand(-1, channels, -1))
    columns = columns.reshape(batch, channels, block, block, rows * cols)
    columns.mul_(_crossfade_window(block, overlap, device).to(torch.float32)[:, :, None])
    if any(g.rows < rows or g.cols < cols for g in grids):  # a smaller grid's spare blocks add nothing
        used = torch.zeros((batch, rows, cols), dtype=torch.float32)
        for b, grid in enumerate(grids):
            used[b, : grid.rows, : grid.cols] = 1
        columns.mul_(used.to(device).reshape(batch, 1, 1, 1, -1))
    grid_size = ((rows - 1) * step + block, (cols - 1) * step + block)
    folded = F.fold(columns.reshape(batch, channels * block * block, rows * cols), grid_size, block, stride=step)
    box_height, box_width = max(r.stop - r.start for r, _ in boxes), max(c.stop - c.start for _, c in boxes)
    return _windows(folded, [r.start - g.top for (r, _), g in zip(boxes, grids)],
                    [c.start - g.left for (_, c), g in zip(boxes, grids)], box_height, box_width).to(detail.dtype)


def _grain_gains(missing: tuple, grain: tuple, target: tuple, fine_only: torch.Tensor, steps: int = 33
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gains (a, b) ≥ 0 of the fine and mid grain whose sum a·fine + b·mid makes up the `missing`
    mean square Laplacian and Immerkaer responses together, per (crop, bin, channel); a crop whose
    `fine_only` (B,) is set takes fine grain only.

    The bands of one copied block are correlated, so the power of their sum is a quadratic form:
    a²·ff + 2ab·fm + b²·mm, with (ff, fm, mm) in `grain` for each probe. Over a fan of directions
    b/a the best length comes from least squares on both probes' errors relative to `target`;
    the direction with the smallest error wins (a non-negative fit in two unknowns).
    """
    angle = torch.linspace(0, math.pi / 2, steps, dtype=DTYPE, device=missing[0].device)
    cos, sin = angle.cos(), angle.sin()

    def form(ff, fm, mm):  # (B, BINS, C) -> (B, BINS, C, steps)
        return ff[..., None] * cos**2 + 2 * fm[..., None] * cos * sin + mm[..., None] * sin**2

    u = form(*grain[0]) / target[0].clamp(min=1e-12)[..., None]
    v = form(*grain[1]) / target[1].clamp(min=1e-12)[..., None]
    p = (missing[0] / target[0].clamp(min=1e-12))[..., None]
    q = (missing[1] / target[1].clamp(min=1e-12))[..., None]
    length2 = ((u * p + v * q) / (u**2 + v**2).clamp(min=1e-12)).clamp(min=0)
    error = (length2 * u - p) ** 2 + (length2 * v - q) ** 2
    error.masked_fill_(fine_only[:, None, None, None] & (angle > 0), math.inf)  # direction 0 is fine grain alone
    best = error.argmin(dim=-1, keepdim=True)
    length = length2.gather(-1, best)[..., 0].sqrt().clamp(max=MAX_GAIN)
    return length * cos[best[..., 0]], length * sin[best[..., 0]]


def _prepare(job: CropJob, block: int) -> dict | None:
    """What the batch needs to know of one crop before its pixels reach the device, read on the
    CPU; None where the crop teaches nothing and stays as it is: no hole, too few known pixels,
    none where the statistics are read, or a side too short for a block of grain."""
    hole = np.ascontiguousarray(job.hole, dtype=bool)
    holes = int(np.count_nonzero(hole))
    height, width = hole.shape
    if hole.size - holes < MIN_SAMPLES or holes == 0 or min(height, width) < MIN_BLOCK:
        return None
    # Statistics are read on every STRIDE-th pixel of each axis (a quarter of them) once the hole
    # is large enough: levels are averages, and this is where most of the time went.
    step = STRIDE if holes >= STRIDE**2 * MIN_STRIDED else 1
    known_sampled = int(np.count_nonzero(~hole[::step, ::step]))
    if known_sampled == 0:  # a mesh of a mask can leave no known pixel on the sampled grid
        return None
    side = _block_side(block, height, width)
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)  # px to the hole's edge
    ys, xs = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    # The grain's levels only matter inside the hole: it is made and probed over the hole's
    # bounding box grown by a pixel (for the probes), and only that box changes.
    box = (slice(max(0, int(ys[0]) - 1), min(height, int(ys[-1]) + 2)),
           slice(max(0, int(xs[0]) - 1), min(width, int(xs[-1]) + 2)))
    return {"step": step, "block": side, "depth": depth, "box": box, "grid": _grid(ys, xs, side),
            "known_sampled": known_sampled}


def regrain_crops(jobs: list[CropJob], feather: float, device: torch.device, block: int = 32,
                  batch: int = 1) -> list[np.ndarray]:
    """Re-grain each job's hole inside its crop; the new crops, in order.

    Crops of one channel count, statistics stride and block side go through the device `batch`
    at a time, similar sizes together (padding a small crop to a large one wastes the GPU's time)."""
    outputs = [job.crop for job in jobs]
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for index, job in enumerate(jobs):
        plan = _prepare(job, block)
        if plan is not None:
            channels = 1 if job.crop.ndim == 2 else job.crop.shape[2]
            groups.setdefault((channels, plan["step"], plan["block"]), []).append((index, plan))
    for members in groups.values():
        members.sort(key=lambda member: jobs[member[0]].hole.size)
        for chunk in _chunks(members, [jobs[index].hole.shape for index, _ in members], batch):
            for (index, _), crop in zip(chunk, _regrain_batch([jobs[i] for i, _ in chunk], [p for _, p in chunk],
                                                               feather, device)):
                outputs[index] = crop
    return outputs


def _chunks(members: list, shapes: list[tuple[int, int]], batch: int) -> list[list]:
    """`members` in runs of at most `batch`, each run's stack (its count times its tallest and
    widest crop) within BATCH_PIXELS, except a crop larger on its own."""
    chunks, height, width = [], 0, 0
    for member, (h, w) in zip(members, shapes):
        height, width = max(height, h), max(width, w)
        if chunks and len(chunks[-1]) < batch and (len(chunks[-1]) + 1) * height * width <= BATCH_PIXELS:
            chunks[-1].append(member)
        else:
            chunks.append([member])
            height, width = h, w
    return chunks


def regrain_crop(crop: np.ndarray, hole: np.ndarray, seed: int, feather: float, device: torch.device,
                 block: int = 32, fill_has_grain: bool = False) -> np.ndarray:
    """Re-grain `hole` inside one crop (HxWxC or HxW uint8); returns the new crop."""
    return regrain_crops([CropJob(crop, hole, seed, fill_has_grain)], feather, device, block)[0]


@dataclass
class _Stack:
    """A batch of crops on the device, each in the top-left corner of one padded stack, with what
    every step of `_regrain_batch` reads of it."""

    jobs: list[CropJob]
    plans: list[dict]
    device: torch.device
    sizes: list[tuple[int, int]]
    channels: int
    x: torch.Tensor  # (B, C, H, W) the pixels
    hole: torch.Tensor  # (B, H, W)
    known: torch.Tensor  # (B, H, W): inside the crop and not in the hole

    @property
    def count(self) -> int:
        return len(self.jobs)

    @property
    def step(self) -> int:
        return self.plans[0]["step"]

    @property
    def boxes(self) -> list[tuple[slice, slice]]:
        return [plan["box"] for plan in self.plans]


def _upload(jobs: list[CropJob], plans: list[dict], device: torch.device) -> _Stack:
    """One upload for the batch: each crop in the top-left corner of the stack."""
    sizes = [job.hole.shape for job in jobs]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    grey = jobs[0].crop.ndim == 2
    channels = 1 if grey else jobs[0].crop.shape[2]
    pixels = np.zeros((len(jobs), channels, height, width), np.uint8)
    holes = np.zeros((len(jobs), height, width), bool)
    inside = np.zeros((len(jobs), height, width), bool)
    for b, (job, (h, w)) in enumerate(zip(jobs, sizes)):
        pixels[b, :, :h, :w] = job.crop[None] if grey else job.crop.transpose(2, 0, 1)
        holes[b, :h, :w] = job.hole
        inside[b, :h, :w] = True
    return _Stack(jobs, plans, device, sizes, channels, torch.from_numpy(pixels).to(device).to(DTYPE),
                  torch.from_numpy(holes).to(device), torch.from_numpy(inside & ~holes).to(device))


@dataclass
class _Surroundings:
    """What the known pixels around each hole say: the levels the grain must reach."""

    base: torch.Tensor  # (B, C, H, W) the photo below the mid band (G3)
    probes: tuple[torch.Tensor, torch.Tensor]  # Laplacian and Immerkaer responses, sampled
    calm: torch.Tensor  # sampled known pixels below the edge quantile: where grain is read
    textured: torch.Tensor  # sampled known pixels below the texture quantile: where texture is read
    bins: torch.Tensor  # (B, H, W) intensity bin of each pixel
    sampled_bins: torch.Tensor
    lines: torch.Tensor  # (B, H, W) pixels within reach of a line: no grain is cut there


def _bands_and_surroundings(stack: _Stack) -> tuple[torch.Tensor, _Surroundings]:
    """The fine band (x - G1) and the mid band (G1 - G3) side by side, their strongest responses
    clipped (grain is cut from both at once), and the surroundings' statistics."""
    x, sizes, step, channels = stack.x, stack.sizes, stack.step, stack.channels
    fine_base, base = _blur(x, BANDS[0], sizes), _blur(x, BANDS[1], sizes)
    bands = torch.empty((stack.count, 2 * channels, *x.shape[2:]), dtype=DTYPE, device=stack.device)
    torch.sub(x, fine_base, out=bands[:, :channels])
    torch.sub(fine_base, base, out=bands[:, channels:])

    sampled_known = stack.known[:, ::step, ::step]
    image_probes = _probes(x, sizes, step)
    # |Laplacian| summed over channels (whole numbers: the Laplacian of 8-bit levels is one) and its mean.
    total = image_probes[0].abs().sum(dim=1)  # (B, h, w)
    strength = total / stack.channels
    known_counts = [plan["known_sampled"] for plan in stack.plans]
    edge, texture = _quantiles(strength.flatten(1)[:, None], sampled_known.flatten(1), known_counts,
                               (EDGE_QUANTILE, TEXTURE_QUANTILE))
    calm = sampled_known & (strength <= edge[:, :, None])
    # Texture counts all but the very strongest responses (the hole hides some edges too), grain
    # only the calm pixels' (an edge is not noise).
    textured = sampled_known & (strength <= texture[:, :, None])
    bins = torch.bucketize(base.mean(dim=1), torch.linspace(0, 255, BINS + 1, device=stack.device, dtype=DTYPE)[1:-1])

    # Grain is cut from known windows, their few strongest responses clipped to the calm pixels'
    # 99.9th percentile: an edge crossing a block then reads as grain, not as a copied line, and
    # the windows stay about as textured as the photo around the hole (wholly calm windows would be
    # the smoothest ones, and the gains that made up for them would amplify whatever they hold).
    calm_counts = calm.flatten(1).sum(dim=1).tolist()
    (limit,) = _quantiles(bands[:, :, ::step, ::step].abs().flatten(2), calm.flatten(1), calm_counts, (CLIP_QUANTILE,))
    bands.clamp_(-limit[:, :, None, None], limit[:, :, None, None])
    # A line crossing a window (a cable over a sky) would still come through clipped, its pieces
    # copied as dark and light specks of its shape all over the fill: blocks are cut from windows
    # with no pixel within the mid band's reach of a response far above the calm pixels' mean,
    # where the crop has such windows (where every window holds such a line, those with the fewest
    # of its pixels serve). A texture made of edges (mortar, branches) is many such responses, which
    # raise the calm pixels' mean with them: it is seldom flagged.
    # In whole numbers (`total`), so the sums are exact in any order a thread count gives them and no
    # window flips between machines: a pixel's |Laplacian| summed over channels, against STRUCTURE
    # times the calm pixels' mean of it.
    calm_count = calm.sum(dim=(1, 2)).clamp(min=1).to(DTYPE)[:, None, None]
    calm_total = (total * calm).sum(dim=(1, 2))[:, None, None]
    floor = MIN_TYPICAL * stack.channels * calm_count
    lines = (total * calm_count > STRUCTURE * torch.maximum(calm_total, floor)).to(torch.float32)[:, None]
    if step > 1:
        lines = lines.repeat_interleave(step, 2).repeat_interleave(step, 3)[:, :, : x.shape[2], : x.shape[3]]
    reach = int(2 * BANDS[1]) + step  # a square's max, one axis at a time
    lines = F.max_pool2d(lines, (1, 2 * reach + 1), stride=1, padding=(0, reach))
    lines = F.max_pool2d(lines, (2 * reach + 1, 1), stride=1, padding=(reach, 0))[:, 0] > 0
    return bands, _Surroundings(base, image_probes, calm, textured, bins, bins[:, ::step, ::step], lines)


@dataclass
class _Boxes:
    """Each crop's hole box (grown by a pixel), where grain is made and the output changes."""

    sizes: list[tuple[int, int]]
    tops: list[int]
    lefts: list[int]
    height: int
    width: int
    bins: torch.Tensor  # (B, h, w) intensity bins over the boxes
    hole: torch.Tensor  # (B, h, w) the hole over the boxes, nothing past a smaller crop's own box

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        return _windows(x, self.tops, self.lefts, self.height, self.width)


def _hole_boxes(stack: _Stack, surroundings: _Surroundings, height: int, width: int) -> _Boxes:
    boxes = stack.boxes
    sizes = [(r.stop - r.start, c.stop - c.start) for r, c in boxes]
    tops, lefts = [r.start for r, _ in boxes], [c.start for _, c in boxes]
    box_bins = _windows(surroundings.bins[:, None], tops, lefts, height, width)[:, 0]
    box_hole = _windows(stack.hole[:, None], tops, lefts, height, width)[:, 0]
    if stack.count > 1:  # past a smaller crop's own box, the window repeats pixels that are not its box's
        device = stack.device
        rows = torch.arange(height, device=device)[None] < torch.tensor([h for h, _ in sizes], device=device)[:, None]
        cols = torch.arange(width, device=device)[None] < torch.tensor([w for _, w in sizes], device=device)[:, None]
        box_hole = box_hole & rows[:, :, None] & cols[:, None, :]
    return _Boxes(sizes, tops, lefts, height, width, box_bins, box_hole)


@dataclass
class _Gains:
    fine: torch.Tensor  # (B, BINS, 1) gain of the fine band's grain, shared by the channels
    mid: torch.Tensor  # (B, BINS, 1) gain of the mid band's grain
    shrink: torch.Tensor  # (B, BINS, 1) scale of the fill's own detail (1: kept)
    ceiling: torch.Tensor  # (B, 1, 1) the level, over the target, the detail is brought down to
    target_lap: torch.Tensor
    target_imm: torch.Tensor


def _grey(detail: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, 1, h, w): the detail's luminance. Added to every channel it changes the
    luminance by as much, and what is left (the colour part) changes it by nothing."""
    if detail.shape[1] != len(LUMA):
        return detail.mean(dim=1, keepdim=True)
    return (detail * torch.tensor(LUMA, dtype=detail.dtype, device=detail.device)[None, :, None, None]).sum(dim=1, keepdim=True)


def _solve_gains(stack: _Stack, surroundings: _Surroundings, grain: torch.Tensor, boxes: _Boxes) -> _Gains:
    """Per crop and intensity bin: how much of each band's grain, and of the fill's own detail,
    brings the hole to the surroundings' levels by both probes.

    On the luminance of every probe's response (the probes are linear: the luminance's response is
    theirs weighted), as Measure reads them, with one gain for all channels: a block of grain is a
    colour vector, and gains that differ per channel (or a bin left alone in blue but re-grained in
    red and green) paint its red and green without its blue, specks of yellow and blue the camera
    never made. The copied grain keeps the camera's own share of each channel."""
    step = stack.step
    inner_hole, inner_bins = boxes.hole[:, ::step, ::step], boxes.bins[:, ::step, ::step]
    (fine_lap, mid_lap), (fine_imm, mid_imm) = ((_grey(band) for band in probe.split(stack.channels, dim=1))
                                                for probe in _probes(grain, boxes.sizes, step))
    # All the grain's statistics in one pass: (B, BINS, 1) tables of each product's mean in the hole.
    (ff_lap, fm_lap, mm_lap, f_abs, m_abs, fm_imm, ff_imm, mm_imm) = _per_bin(torch.cat([
        fine_lap**2, fine_lap * mid_lap, mid_lap**2, fine_imm.abs(), mid_imm.abs(),
        fine_imm * mid_imm, fine_imm**2, mid_imm**2], dim=1), inner_bins, inner_hole).split(1, dim=2)
    # Immerkaer's level is a mean absolute response (as Measure's noise probe reads it, robust to
    # the odd edge): its square enters the form, coupled by the bands' correlation.
    correlation = fm_imm / (ff_imm * mm_imm).sqrt().clamp(min=1e-12)
    grain_powers = ((ff_lap, fm_lap, mm_lap), (f_abs**2, correlation * f_abs * m_abs, m_abs**2))
    image_powers = torch.cat([_grey(surroundings.probes[0]) ** 2, _grey(surroundings.probes[1]).abs()], dim=1)
    sampled_bins = surroundings.sampled_bins
    target_lap = _per_bin(image_powers[:, :1], sampled_bins, surroundings.textured)
    target_imm = _per_bin(image_powers[:, 1:], sampled_bins, surroundings.calm)
    fill_lap, fill_imm = _per_bin(image_powers, sampled_bins, stack.hole[:, ::step, ::step]).split(1, dim=2)
    target_imm, fill_imm = target_imm**2, fill_imm**2
    # A fill within LEAVE_ALONE of the photo's level by both probes is left alone: more grain on a
    # fill that already has it only makes it noisier than the truth. Otherwise the fill keeps as
    # much of its own detail as fits under the target by both probes (the ripples fast marching
    # leaves are too sharp for how smooth it is) and the photo's grain makes up the rest (the fill
    # and grain from elsewhere are independent: their powers add).
    lap_ratio = (fill_lap / target_lap.clamp(min=1e-12)).sqrt()
    imm_ratio = (fill_imm / target_imm.clamp(min=1e-12)).sqrt()
    low, high = LEAVE_ALONE
    within = (lap_ratio >= low) & (lap_ratio <= high) & (imm_ratio >= low) & (imm_ratio <= high)
    worst = torch.maximum(lap_ratio, imm_ratio)
    # Copied pixels carry the camera's grain already, and their texture is the hidden content's, which
    # the surroundings do not know: a copied fill under the texture level keeps it. One short of the
    # noise is re-grained, and one over either level is brought down to the band's top (not to the
    # target: the fill is read over all its pixels, the target without the photo's strongest
    # responses, and a copy of real structure would lose it): sources picked from busier parts of
    # the photo (grass, edges) read 1.2-2.4x the truth's noise on 4 MP listing photos.
    copies_grain = torch.tensor([job.fill_has_grain for job in stack.jobs], device=stack.device)[:, None, None]
    within = torch.where(copies_grain, (imm_ratio >= low) & (worst <= high), within)
    ceiling = torch.where(copies_grain, torch.full_like(worst[:, :1, :1], high), torch.ones_like(worst[:, :1, :1]))
    shrink = torch.where(~within & (worst > ceiling), ceiling / worst.clamp(min=1e-12), torch.ones_like(worst))
    missing = ((target_lap - shrink**2 * fill_lap).clamp(min=0), (target_imm - shrink**2 * fill_imm).clamp(min=0))
    # A hole thinner than the mid band (the strokes of a text) takes fine grain only: structure at
    # the scale of the hole, cut from elsewhere, would redraw the letters' outline in its pattern.
    thin = torch.tensor([float(plan["depth"].max()) < THIN_HOLE for plan in stack.plans], device=stack.device)
    fine_gain, mid_gain = _grain_gains(missing, grain_powers, (target_lap, target_imm), thin)
    # A copied fill with the camera's noise is only brought down, never given grain on top: the
    # blocks of a smooth crop are mostly flat, and the gains that make up for them would amplify
    # what little structure they hold into specks.
    no_grain = within | (copies_grain & (imm_ratio >= low))
    fine_gain = torch.where(no_grain, torch.zeros_like(fine_gain), fine_gain)
    mid_gain = torch.where(no_grain, torch.zeros_like(mid_gain), mid_gain)
    return _Gains(fine_gain, mid_gain, shrink, ceiling, target_lap, target_imm)


def _per_pixel(table: torch.Tensor, boxes: _Boxes, device: torch.device) -> torch.Tensor:
    """(B, BINS, C) -> (B, C, h, w) over the boxes, each pixel its bin's value."""
    count, channels = table.shape[0], table.shape[2]
    if _cpu_kernels(device):  # numpy's take, as in quilt_grain
        return _stacked([torch.from_numpy(np.take(table[b].T.contiguous().numpy(), boxes.bins[b].numpy(), axis=1))
                         for b in range(count)], (count, channels, boxes.height, boxes.width))
    return torch.gather(table.transpose(1, 2), 2, boxes.bins.flatten(1)[:, None].expand(-1, channels, -1)).reshape(
        count, channels, boxes.height, boxes.width)


def _feather(stack: _Stack, boxes: _Boxes, feather: float) -> torch.Tensor:
    """Weights that fade the change in over a few pixels inside the hole's edge; zero outside it."""
    weight = np.zeros((stack.count, 1, boxes.height, boxes.width), np.float32)
    for b, (plan, (r, c)) in enumerate(zip(stack.plans, stack.boxes)):
        depth = plan["depth"][r, c]
        weight[b, 0, : depth.shape[0], : depth.shape[1]] = (
            np.clip(depth / feather, 0, 1) if feather > 0 else (depth > 0).astype(np.float32))
    return torch.from_numpy(weight).to(stack.device, DTYPE)


def _chroma_power(detail: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, 1, h, w): the power of the detail's colour part."""
    return (detail - _grey(detail)).square().sum(dim=1, keepdim=True)


def _colour_held_to_the_photos(stack: _Stack, surroundings: _Surroundings, boxes: _Boxes, grain_change: torch.Tensor,
                               detail: torch.Tensor, shrink: torch.Tensor) -> torch.Tensor:
    """`grain_change` with its colour part scaled down, per intensity bin, to what the photo's detail
    (below G3) has of colour beside the fill's own: the gains are set by the grain's luminance, and
    blocks from the calm parts of a JPEG carry more colour for their grey than its texture does
    (chroma noise; its edges are mostly grey), so a gain of 2-4 painted specks of colour over the
    fill, twice the truth's on camera photos. The luminance is kept: it is what the gains aimed at.
    `detail`: the fill's own (x - G3) over the boxes."""
    if stack.channels == 1:
        return grain_change
    step = stack.step
    sampled_detail = stack.x[:, :, ::step, ::step] - surroundings.base[:, :, ::step, ::step]
    target = _per_bin(_chroma_power(sampled_detail), surroundings.sampled_bins, surroundings.textured)
    inner_bins, inner_hole = boxes.bins[:, ::step, ::step], boxes.hole[:, ::step, ::step]
    fill = _per_bin(_chroma_power(detail[:, :, ::step, ::step]), inner_bins, inner_hole)
    grain = _per_bin(_chroma_power(grain_change[:, :, ::step, ::step]), inner_bins, inner_hole)
    scale = ((target - shrink.square() * fill).clamp(min=0) / grain.clamp(min=1e-12)).sqrt().clamp(max=1)
    grey = _grey(grain_change)
    return grey + (grain_change - grey) * _per_pixel(scale, boxes, stack.device)


def _compose(stack: _Stack, surroundings: _Surroundings, grain: torch.Tensor, boxes: _Boxes, gains: _Gains,
             feather: float) -> torch.Tensor:
    """The boxes' new pixels: the fill, its own detail scaled down where needed, plus the grain."""
    device, step = stack.device, stack.step
    fine_grain, mid_grain = grain.split(stack.channels, dim=1)
    grain_change = fine_grain * _per_pixel(gains.fine, boxes, device) + mid_grain * _per_pixel(gains.mid, boxes, device)
    box_pixels = boxes.windows(stack.x)
    detail = box_pixels - boxes.windows(surroundings.base)  # the fill's own detail (x - G3), scaled down
    grain_change = _colour_held_to_the_photos(stack, surroundings, boxes, grain_change, detail, gains.shrink)
    weight = _feather(stack, boxes, feather)
    shrink = gains.shrink
    if not bool((shrink < 1).any()):
        return (box_pixels + grain_change * weight).round().clamp(0, 255)
    result = (box_pixels + (grain_change + detail * (_per_pixel(shrink, boxes, device) - 1)) * weight).round().clamp(0, 255)
    # Rounding to whole grey levels adds noise of its own where the scaled-down fill is nearly
    # flat: on a photo whose grain is under half a level, the detail left over toggles between two
    # levels where the photo's smooth ramps step. So the levels are read again after rounding, and
    # where they are still over the target the detail is scaled down once more (once: a second
    # reading overshoots).
    laplacian, immerkaer = (_grey(response) for response in _probes(result, boxes.sizes, step))
    rounded_lap, rounded_imm = _per_bin(torch.cat([laplacian**2, immerkaer.abs()], dim=1), boxes.bins[:, ::step, ::step],
                                        boxes.hole[:, ::step, ::step]).split(1, dim=2)
    over = torch.maximum((rounded_lap / gains.target_lap.clamp(min=1e-12)).sqrt(),
                         rounded_imm / gains.target_imm.clamp(min=1e-12).sqrt())
    shrink = torch.where((shrink < 1) & (over > gains.ceiling), shrink * gains.ceiling / over, shrink)
    return (box_pixels + (grain_change + detail * (_per_pixel(shrink, boxes, device) - 1)) * weight).round().clamp(0, 255)


def _regrain_batch(jobs: list[CropJob], plans: list[dict], feather: float, device: torch.device) -> list[np.ndarray]:
    """Steps 1-5 for crops of one channel count, stride and block side, together."""
    stack = _upload(jobs, plans, device)
    bands, surroundings = _bands_and_surroundings(stack)
    # Drawn on the CPU whatever the device: a GPU picks the same blocks, so its bytes match the CPU's.
    generators = [torch.Generator().manual_seed(job.seed & 0x7FFFFFFFFFFFFFFF) for job in jobs]
    grain = quilt_grain(bands, stack.known & ~surroundings.lines, stack.sizes, [plan["grid"] for plan in plans], stack.boxes,
                        plans[0]["block"], generators)
    boxes = _hole_boxes(stack, surroundings, *grain.shape[2:])
    gains = _solve_gains(stack, surroundings, grain, boxes)
    result = _compose(stack, surroundings, grain, boxes, gains, feather).to(torch.uint8).cpu().numpy()
    grey = jobs[0].crop.ndim == 2
    outputs = []
    for b, (job, (r, c)) in enumerate(zip(jobs, stack.boxes)):
        out = job.crop.copy()
        new = result[b, :, : r.stop - r.start, : c.stop - c.start]
        out[r, c] = new[0] if grey else new.transpose(1, 2, 0)
        outputs.append(out)
    return outputs


class Regrain(BatchesOnDevice, EditStage):
    kind = "clarify"
    name = "regrain"
    version = "9"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, settings: RegrainConfig, device: torch.device, cpu_batch: int | None = None):
        """`cpu_batch`: crops re-grained together on the CPU (1: each alone; more runs CUDA's batching there)."""
        self.feather = settings.feather
        self.margin = settings.margin
        self.block = settings.block
        self.batch = settings.batch
        self.device = device
        self._set_cpu_batch(cpu_batch)

    @classmethod
    def from_config(cls, config) -> Regrain:
        return cls(config.regrain, pick_device(config.device))

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray:
        return self.run_many([(image, mask, context)])[0]

    def run_many(self, items: list[tuple[np.ndarray, np.ndarray, EditContext]], in_place: bool = False) -> list[np.ndarray]:
        """`__call__` over several `(image, mask, context)` of one partition: on CUDA their crops
        share batches of `regrain.batch`. `in_place`: write into the given images (the caller's own
        copies) rather than new ones; nothing is written until every crop is done, so a call that
        fails leaves them as they were."""
        jobs, places = [], []
        for index, (image, mask, context) in enumerate(items):
            # A Clean stage whose fill carries grain of its own (copied or generated pixels) says so.
            fill_has_grain = context.fill_copies_grain
            for number, (rows, cols) in enumerate(mask_components(mask, self.margin)):
                jobs.append(CropJob(image[rows, cols], mask[rows, cols], context.seed + number, fill_has_grain))
                places.append((index, rows, cols))
        batch = self.batch_size(self.batch)
        crops = regrain_crops(jobs, self.feather, self.device, self.block, batch)
        outputs = [image if in_place else image.copy() for image, _, _ in items]
        for (index, rows, cols), crop in zip(places, crops):
            outputs[index][rows, cols] = crop
        return outputs
