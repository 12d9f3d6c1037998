"""`regrain` (the default clarifier): give the filled region the photo's own grain.

Noise-level-function matching (after C. Liu et al., "Automatic Estimation and Removal of Noise
from a Single Image", PAMI 2008), with the grain itself taken from the photo, as image quilting
takes texture (A. Efros, W. Freeman, SIGGRAPH 2001):

1. Around each mask component (a crop at full resolution), split the image into a smooth base
   and two detail bands: fine (image minus a Gaussian of sigma 1) and mid (sigma 1 minus sigma 3).
2. The photo's grain, from the known pixels of the crop: the RMS Laplacian over all but the
   strongest 0.5% of Laplacian responses, and the mean |Immerkaer| response over all but the
   strongest 2% (edges of things, not grain) -- the Measure step's texture and noise probes -- per
   channel and per intensity bin: the camera's noise level function (sensors are noisier in the
   highlights, each channel has its own level).
3. Grain to add: blocks of both bands cut from known windows of the crop (their rare strongest
   responses clipped) and cross-faded where they overlap (their squares sum to 1, so the blend
   keeps the grain's variance). Copied grain keeps what a parametric model loses: the blotchiness
   that demosaicing and JPEG give it, its correlation across channels, and its heavy tails.
4. A fill within 15-20% of the target by both probes is left alone, and so is a fill from an
   engine that copies grain (exemplar, lama) whose noise already reaches 85% of the target: its
   grain is the camera's, and its texture level is the hidden content's, which the surroundings
   do not know. Otherwise it keeps as much of
   its own detail as fits under the target by both (fast marching leaves ripples too sharp for how
   smooth it is), and the two grain bands make up the rest, with the gains that meet both probes
   at once: powers of independent layers add, and the power of the two bands of one block is a
   quadratic form in their gains (they are correlated), solved per intensity bin and channel.
5. Feather the change over a few pixels inside the mask edge, so no seam appears.

Blocks are drawn by a torch generator seeded with the row's seed: a rerun gives identical bytes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from tasks.clean import ENGINES
from tasks.device import pick_device
from tasks.masks import mask_components

BANDS = (1.0, 3.0)  # Gaussian sigmas: fine = image - G(1), mid = G(1) - G(3), base = G(3)
BINS = 6  # intensity bins of the noise level function
MIN_SAMPLES = 64  # fewer known pixels than this teach nothing: the crop is left as it is
POOLING = 1000  # pixels' worth of weight the crop's overall level has in each intensity bin
THIN_HOLE = 2 * BANDS[1]  # px from the hole's edge to its middle: a thinner hole gets fine grain only
MAX_GAIN = 4.0  # a copied band is never amplified more: past that, its windows are not this grain
CLIP_QUANTILE = 0.999  # copied detail beyond this quantile of the calm pixels' is clipped
STRIDE = 2  # statistics read on every 2nd pixel of each axis...
MIN_STRIDED = 1024  # ...when the hole still has this many of them
EDGE_QUANTILE = 0.98  # stronger Laplacian responses are structure, not grain...
TEXTURE_QUANTILE = 0.995  # ...but the texture level counts all below this one
# float64: a parallel reduction sums in an order that depends on the thread count, and float32
# rounding would then flip a few output pixels between a laptop and a Dask worker. In float64 the
# differences stay far below half a grey level, so a release is the same bytes everywhere.
DTYPE = torch.float64


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=DTYPE)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian of (C, H, W) with reflected borders.

    On the CPU, OpenCV's separable filter: torch has no fast float64 convolution there, and
    OpenCV's row-buffered pass is 5x faster than even torch's shifted sums (the pass goes through
    cache, not through memory once per tap). Elsewhere, a sum of shifted copies. Either way each
    output is a fixed sequence of products, so the bytes do not depend on the thread count; the two
    differ by 1e-13, far below the half grey level that rounding would need to flip.
    """
    if x.device.type == "cpu":
        kernel = _gaussian_kernel(sigma).numpy()
        planes = x.numpy()
        return torch.from_numpy(np.stack([
            cv2.sepFilter2D(plane, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT_101) for plane in planes]))
    kernel = _gaussian_kernel(sigma).tolist()
    radius = len(kernel) // 2
    height, width = x.shape[1:]
    padded = F.pad(x[None], (radius, radius, 0, 0), mode="reflect")[0]
    across = padded[:, :, :width] * kernel[0]
    for tap in range(1, len(kernel)):
        across.add_(padded[:, :, tap : tap + width], alpha=kernel[tap])
    padded = F.pad(across[None], (0, 0, radius, radius), mode="reflect")[0]
    down = padded[:, :height] * kernel[0]
    for tap in range(1, len(kernel)):
        down.add_(padded[:, tap : tap + height], alpha=kernel[tap])
    return down


# The two probes of the Measure step: the 4-neighbour Laplacian (texture) and Immerkaer's mask (noise).
# (`_probes` computes them by shifted sums; the kernels stay here as their definition.)
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=DTYPE)
_IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=DTYPE)
_LAPLACIAN_NP, _IMMERKAER_NP = _LAPLACIAN.numpy(), _IMMERKAER.numpy()


def _per_bin(values: torch.Tensor, bins: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of (C, H, W) `values` per (intensity bin, channel) over `region`, as (BINS, C)."""
    selected = values[:, region]  # (C, n)
    index = bins[region]
    if values.device.type == "cpu":
        counts = torch.bincount(index, minlength=BINS).to(DTYPE)
        sums = torch.zeros((BINS, values.shape[0]), dtype=DTYPE, device=values.device).index_add_(0, index, selected.T)
    else:  # CUDA's index_add_ and bincount add with atomics, in no fixed order: a matrix product does
        member = F.one_hot(index, BINS).to(DTYPE)  # (n, BINS)
        counts = member.sum(dim=0)
        sums = member.T @ selected.T
    overall = selected.mean(dim=1)
    # Partial pooling: a bin's own level counts as much as POOLING pixels of the overall level, so
    # a thin bin (a few highlights on a texture) cannot swing the grain on its own.
    return (sums + POOLING * overall[None, :]) / (counts[:, None] + POOLING)


def _probes(x: torch.Tensor, step: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The Laplacian and Immerkaer responses of (C, H, W) with reflected borders, at every
    `step`-th pixel of each axis (OpenCV's filter on the CPU, shifted sums elsewhere, for the
    reasons `_blur` gives)."""
    if x.device.type == "cpu":
        planes = np.ascontiguousarray(x.numpy())
        return tuple(torch.from_numpy(np.stack([
            cv2.filter2D(plane, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT_101)[::step, ::step]
            for plane in planes])) for kernel in (_LAPLACIAN_NP, _IMMERKAER_NP))
    height, width = x.shape[1:]
    p = F.pad(x[None], (1, 1, 1, 1), mode="reflect")[0]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return p[:, 1 + dy : 1 + dy + height : step, 1 + dx : 1 + dx + width : step]

    centre = shifted(0, 0)
    edges = shifted(-1, 0) + shifted(1, 0) + shifted(0, -1) + shifted(0, 1)
    corners = shifted(-1, -1) + shifted(-1, 1) + shifted(1, -1) + shifted(1, 1)
    return edges - 4 * centre, corners - 2 * edges + 4 * centre


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The `q` quantile of each row of (R, n) `values` (the nearest rank below): a selection in
    linear time, where torch.quantile sorts."""
    rank = max(1, min(values.shape[1], int(q * (values.shape[1] - 1)) + 1))
    return values.kthvalue(rank, dim=1).values


def _bounds(region: torch.Tensor, pad: int) -> tuple[slice, slice]:
    """The bounding box of `region` grown by `pad` pixels, within its array."""
    ys, xs = torch.nonzero(region, as_tuple=True)
    height, width = region.shape
    return (slice(max(0, int(ys.min()) - pad), min(height, int(ys.max()) + 1 + pad)),
            slice(max(0, int(xs.min()) - pad), min(width, int(xs.max()) + 1 + pad)))


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


def quilt_grain(detail: torch.Tensor, source: torch.Tensor, hole: torch.Tensor, box: tuple[slice, slice], block: int,
                generator) -> torch.Tensor:
    """A field like `detail` (C, H, W), over `box` (which holds the hole): blocks cut from windows
    that lie wholly in `source`, placed on a grid and cross-faded where they overlap."""
    channels, height, width = detail.shape
    device = detail.device
    block = max(4, min(block, height, width) // 4 * 4)
    overlap = block // 4  # a quarter of a block cross-fades: each pixel is made of 1 to 4 blocks
    step = block - overlap
    outside = F.pad((~source).to(torch.int32).cumsum(0).cumsum(1), (1, 0, 1, 0))
    bad = outside[block:, block:] - outside[:-block, block:] - outside[block:, :-block] + outside[:-block, :-block]
    sy, sx = torch.nonzero(bad == bad.min(), as_tuple=True)  # wholly in `source` where possible
    hy, hx = torch.nonzero(hole, as_tuple=True)
    # The grid reaches `overlap` beyond the hole, so the hole never lies in an outer ramp.
    y0, x0 = int(hy.min()) - overlap, int(hx.min()) - overlap
    rows = max(1, math.ceil((int(hy.max()) + 1 + overlap - y0 - block) / step) + 1)
    cols = max(1, math.ceil((int(hx.max()) + 1 + overlap - x0 - block) / step) + 1)
    pick = torch.randint(sy.numel(), (rows * cols,), generator=generator).to(device)
    offsets = torch.arange(block, device=device)
    # One flat gather straight into fold's (C·block·block, blocks) layout: no copy to reorder.
    within = (offsets[:, None] * width + offsets[None, :])[:, :, None]  # (block, block, 1)
    flat = within + (sy[pick] * width + sx[pick])[None, None, :]  # (block, block, blocks)
    # Blocks are copied in float32, half the bytes of this, the step's largest copy. Still the same
    # bytes on every machine: a cast, a product and the fold's sums in a fixed order all round the
    # same way everywhere (it is reductions in a varying order that float64 guards against).
    source_grain = detail.to(torch.float32).reshape(channels, -1)
    if device.type == "cpu":  # numpy's take gathers 2.5x faster than torch's indexing there
        columns = torch.from_numpy(np.take(source_grain.numpy(), flat.numpy(), axis=1))
    else:
        columns = source_grain[:, flat]
    columns.mul_(_crossfade_window(block, overlap, device).to(torch.float32)[:, :, None])
    grid_h, grid_w = (rows - 1) * step + block, (cols - 1) * step + block
    grid = F.fold(columns.reshape(1, channels * block * block, rows * cols), (grid_h, grid_w), block, stride=step)[0]
    # `box` may reach beyond the grid: zero there.
    top, left = box[0].start, box[1].start
    field = torch.zeros((channels, box[0].stop - top, box[1].stop - left), dtype=detail.dtype, device=device)
    gy0, gx0 = max(top, y0), max(left, x0)
    gy1, gx1 = min(box[0].stop, y0 + grid_h), min(box[1].stop, x0 + grid_w)
    field[:, gy0 - top : gy1 - top, gx0 - left : gx1 - left] = grid[:, gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
    return field


def _grain_gains(missing: tuple, grain: tuple, target: tuple, steps: int = 33, fine_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Gains (a, b) ≥ 0 of the fine and mid grain whose sum a·fine + b·mid makes up the `missing`
    mean square Laplacian and Immerkaer responses together, per (bin, channel).

    The bands of one copied block are correlated, so the power of their sum is a quadratic form:
    a²·ff + 2ab·fm + b²·mm, with (ff, fm, mm) in `grain` for each probe. Over a fan of directions
    b/a the best length comes from least squares on both probes' errors relative to `target`;
    the direction with the smallest error wins (a non-negative fit in two unknowns).
    """
    angle = torch.linspace(0, 0 if fine_only else math.pi / 2, 1 if fine_only else steps, dtype=DTYPE,
                           device=missing[0].device)
    cos, sin = angle.cos(), angle.sin()

    def form(ff, fm, mm):  # (BINS, C) -> (BINS, C, steps)
        return ff[..., None] * cos**2 + 2 * fm[..., None] * cos * sin + mm[..., None] * sin**2

    u = form(*grain[0]) / target[0].clamp(min=1e-12)[..., None]
    v = form(*grain[1]) / target[1].clamp(min=1e-12)[..., None]
    p = (missing[0] / target[0].clamp(min=1e-12))[..., None]
    q = (missing[1] / target[1].clamp(min=1e-12))[..., None]
    length2 = ((u * p + v * q) / (u**2 + v**2).clamp(min=1e-12)).clamp(min=0)
    error = (length2 * u - p) ** 2 + (length2 * v - q) ** 2
    best = error.argmin(dim=-1, keepdim=True)
    length = length2.gather(-1, best)[..., 0].sqrt().clamp(max=MAX_GAIN)
    return length * cos[best[..., 0]], length * sin[best[..., 0]]


def regrain_crop(crop: np.ndarray, hole: np.ndarray, seed: int, feather: float, device: torch.device,
                 block: int = 32, fill_has_grain: bool = False) -> np.ndarray:
    """Re-grain `hole` inside one crop (HxWxC or HxW uint8); returns the new crop.

    `fill_has_grain`: the fill came from an engine that copies grain (see step 4)."""
    grey = crop.ndim == 2
    x = torch.from_numpy(crop[None] if grey else np.ascontiguousarray(crop.transpose(2, 0, 1))).to(device, DTYPE)
    hole_t = torch.from_numpy(hole).to(device)
    known = ~hole_t
    if known.sum() < MIN_SAMPLES or hole_t.sum() == 0:
        return crop
    channels = x.shape[0]
    fine_base, base = _blur(x, BANDS[0]), _blur(x, BANDS[1])
    # The fine band (x - G1) and the mid band (G1 - G3), side by side: grain is cut from both at once.
    bands = torch.empty((2 * channels, *x.shape[1:]), dtype=DTYPE, device=device)
    torch.sub(x, fine_base, out=bands[:channels])
    torch.sub(fine_base, base, out=bands[channels:])

    # Statistics are read on every STRIDE-th pixel of each axis (a quarter of them) once the hole
    # is large enough: levels are averages, and this is where most of the time went.
    step = STRIDE if int(hole_t.sum()) >= STRIDE**2 * MIN_STRIDED else 1
    sampled_known, sampled_hole = known[::step, ::step], hole_t[::step, ::step]
    image_probes = _probes(x, step)
    strength = image_probes[0].abs().mean(dim=0)
    calm = sampled_known & (strength <= _quantile(strength[sampled_known][None], EDGE_QUANTILE)[0])
    bins = torch.bucketize(base.mean(dim=0), torch.linspace(0, 255, BINS + 1, device=device, dtype=DTYPE)[1:-1])
    sampled_bins = bins[::step, ::step]

    # Drawn on the CPU whatever the device: a GPU picks the same blocks, so its bytes match the CPU's.
    generator = torch.Generator().manual_seed(seed & 0x7FFFFFFFFFFFFFFF)
    # Grain is cut from any known window, its few strongest responses clipped to the calm pixels'
    # 99.9th percentile: an edge crossing a block then reads as grain, not as a copied line, and
    # the windows stay as textured as the photo around the hole (wholly calm windows would be the
    # smoothest ones, and the gains that made up for them would amplify whatever they hold).
    limit = _quantile(bands[:, ::step, ::step][:, calm].abs(), CLIP_QUANTILE)[:, None, None]
    # The grain's levels only matter inside the hole: it is made and probed over the hole's
    # bounding box (+1 px for the probes), not the crop.
    rows, cols = _bounds(hole_t, 1)
    grain = quilt_grain(bands.clamp_(-limit, limit), known, hole_t, (rows, cols), block, generator)
    (fine_lap, mid_lap), (fine_imm, mid_imm) = (probe.split(channels) for probe in _probes(grain, step))
    inner_hole, inner_bins = hole_t[rows, cols][::step, ::step], bins[rows, cols][::step, ::step]

    # All the grain's statistics in one pass: (BINS, C) tables of each product's mean in the hole.
    (ff_lap, fm_lap, mm_lap, f_abs, m_abs, fm_imm, ff_imm, mm_imm) = _per_bin(torch.cat([
        fine_lap**2, fine_lap * mid_lap, mid_lap**2, fine_imm.abs(), mid_imm.abs(),
        fine_imm * mid_imm, fine_imm**2, mid_imm**2]), inner_bins, inner_hole).split(channels, dim=1)
    # Immerkaer's level is a mean absolute response (as Measure's noise probe reads it, robust to
    # the odd edge): its square enters the form, coupled by the bands' correlation.
    correlation = fm_imm / (ff_imm * mm_imm).sqrt().clamp(min=1e-12)
    grain_powers = ((ff_lap, fm_lap, mm_lap), (f_abs**2, correlation * f_abs * m_abs, m_abs**2))
    image_powers = torch.cat([image_probes[0] ** 2, image_probes[1].abs()])
    # Texture counts all but the very strongest responses (the hole hides some edges too), grain
    # only the calm pixels' (an edge is not noise).
    textured = sampled_known & (strength <= _quantile(strength[sampled_known][None], TEXTURE_QUANTILE)[0])
    target_lap = _per_bin(image_powers[:channels], sampled_bins, textured)
    target_imm = _per_bin(image_powers[channels:], sampled_bins, calm)
    fill_lap, fill_imm = _per_bin(image_powers, sampled_bins, sampled_hole).split(channels, dim=1)
    target_imm, fill_imm = target_imm**2, fill_imm**2
    # A fill within 15-20% of the photo's level by both probes is left alone: more grain on a fill
    # that already has it only makes it noisier than the truth. Otherwise the fill keeps as much
    # of its own detail as fits under the target by both probes (the ripples fast marching leaves
    # are too sharp for how smooth it is) and the photo's grain makes up the rest (the fill and
    # grain from elsewhere are independent: their powers add).
    lap_ratio = (fill_lap / target_lap.clamp(min=1e-12)).sqrt()
    imm_ratio = (fill_imm / target_imm.clamp(min=1e-12)).sqrt()
    within = (lap_ratio >= 0.85) & (lap_ratio <= 1.2) & (imm_ratio >= 0.85) & (imm_ratio <= 1.2)
    if fill_has_grain:
        # Copied pixels carry the camera's grain already: re-shaping them to the surroundings'
        # levels followed surroundings cleaner or noisier than what the hole hid (on camera
        # photos noise-in-band fell from 83% to 62%). Only a fill short of the noise is re-grained.
        within = imm_ratio >= 0.85
    worst = torch.maximum(lap_ratio, imm_ratio)
    shrink = torch.where(~within & (worst > 1), 1 / worst.clamp(min=1e-12), torch.ones_like(worst))
    missing = ((target_lap - shrink**2 * fill_lap).clamp(min=0), (target_imm - shrink**2 * fill_imm).clamp(min=0))
    # A hole thinner than the mid band (the strokes of a text) takes fine grain only: structure at
    # the scale of the hole, cut from elsewhere, would redraw the letters' outline in its pattern.
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)  # px to the hole's edge
    thin = float(depth.max()) < THIN_HOLE
    fine_gain, mid_gain = _grain_gains(missing, grain_powers, (target_lap, target_imm), fine_only=thin)
    fine_gain = torch.where(within, torch.zeros_like(fine_gain), fine_gain)
    mid_gain = torch.where(within, torch.zeros_like(mid_gain), mid_gain)

    # Only the hole's bounding box changes (the grain's box is one pixel larger).
    box_rows, box_cols = _bounds(hole_t, 0)
    inner = (slice(box_rows.start - rows.start, box_rows.stop - rows.start),
             slice(box_cols.start - cols.start, box_cols.stop - cols.start))
    box_bins = bins[box_rows, box_cols]

    def per_pixel(table: torch.Tensor) -> torch.Tensor:  # (BINS, C) -> (C, h, w) over the box
        if device.type == "cpu":  # numpy's take, as in quilt_grain
            return torch.from_numpy(np.take(table.T.contiguous().numpy(), box_bins.numpy(), axis=1))
        return table.T[:, box_bins]

    fine_grain, mid_grain = (g[:, inner[0], inner[1]] for g in grain.split(channels))
    change = fine_grain * per_pixel(fine_gain) + mid_grain * per_pixel(mid_gain)
    if bool((shrink < 1).any()):  # the fill's own detail (x - G3), scaled down
        change += (x[:, box_rows, box_cols] - base[:, box_rows, box_cols]) * (per_pixel(shrink) - 1)
    weight = depth[box_rows, box_cols]
    weight = torch.from_numpy(np.clip(weight / feather, 0, 1) if feather > 0 else (weight > 0).astype(np.float32))
    box = (x[:, box_rows, box_cols] + change * weight.to(device, DTYPE)[None]).round().clamp(0, 255)
    box = box.to(torch.uint8).cpu().numpy()
    out = crop.copy()
    out[box_rows, box_cols] = box[0] if grey else box.transpose(1, 2, 0)
    return out


class Regrain:
    name = "regrain"
    version = "4"  # bump when the output bytes change: finished work is keyed by it

    def __init__(self, config):
        self.feather = config.regrain.feather
        self.margin = config.regrain.margin
        self.block = config.regrain.block
        self.device = pick_device(config.device)

    def __call__(self, image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
        out = image.copy()
        # Engines whose fill carries grain of its own (copied or generated pixels) say so.
        fill_has_grain = bool(getattr(ENGINES.get(context.engine), "copies_grain", False))
        for number, (rows, cols) in enumerate(mask_components(mask, self.margin)):
            out[rows, cols] = regrain_crop(image[rows, cols], mask[rows, cols], context.seed + number, self.feather,
                                           self.device, self.block, fill_has_grain)
        return out
