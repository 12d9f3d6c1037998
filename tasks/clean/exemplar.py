"""`exemplar`: texture-synthesizing object removal, coarse-to-fine patch-based completion.

Y. Wexler, E. Shechtman, M. Irani, "Space-Time Completion of Video", PAMI 2007 (the EM fill);
C. Barnes, E. Shechtman, A. Finkelstein, D. B. Goldman, "PatchMatch", SIGGRAPH 2009 (the search).

Each mask component is filled on its own crop, at full resolution, from the known pixels of that
crop, through a pyramid of the crop:

1. coarsest level: the hole is peeled from its rim inward, each ring copying the best known patch
   (exhaustive, one matrix product per ring), then every patch overlapping the hole is matched
   exactly; a few EM rounds follow (PatchMatch propagation + random search for all pixels at once,
   then a weighted vote of the matched patches);
2. the nearest-neighbour field is doubled level by level; the two finest levels only inherit it
   (searching there costs most and changes little);
3. full resolution: each hole pixel takes the fine layer (grain, detail) of its source pixels by a
   vote that favours the best match, over the smooth layer of the voted half-resolution completion.

Patches are compared through a few principal components of the crop's own patches (as coherency
sensitive hashing projects patches onto a few kernels), with two texture channels (mean |gradient|):
one convolution gives every patch's descriptor, and a candidate costs a gather of a dozen floats.
Everything is a tensor operation over all pixels; the loops run over levels, rounds and rings.

Crops are filled in batches: the crops of one batch share a pyramid depth, are padded to one size
(colours by repeating the edge, as a lone crop's patches see beyond it) and go through the search,
the votes and the convolutions together, each drawing from its own generator and taking its own
medians and principal components. A crop's few thousand kernels are small: on a GPU one crop alone
keeps it busy a tenth of the time, a batch of crops from many images of a partition keeps it busy.
On the CPU each crop is its own batch, so its bytes never depend on its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tasks.device import pick_device
from tasks.masks import mask_components
from tasks.settings import ExemplarConfig
from tasks.stages import BatchesOnDevice, EditContext, EditStage, write_back


def _pyramid(image: torch.Tensor, hole: torch.Tensor, levels: int):
    """Images (C,h,w) and holes (h,w) from fine to coarse; a coarse pixel is hole if any of its 2x2 is."""
    images, holes = [image], [hole]
    for _ in range(levels):
        images.append(F.avg_pool2d(images[-1][None], 2, ceil_mode=True)[0])
        holes.append(F.max_pool2d(holes[-1][None, None].float(), 2, ceil_mode=True)[0, 0] > 0)
    return images, holes


def _levels(hole: np.ndarray, params: ExemplarConfig) -> int:
    """Pyramid depth for one crop: coarsen until the hole is small, while the crop still holds several
    patches, and no deeper than `max_levels`. At a sixteenth of a 4 MP photo a 400-700 px hole's
    surroundings are a few blurred patches: the coarse field lays out the wrong texture, and the seam
    shows it (listing objects, seed 2024: median seam 2.2 -> 1.7, struct 0.79 -> 0.83)."""
    rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
    extent = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1
    crop_side = min(hole.shape)
    levels = 0
    while (levels < params.max_levels
           and extent / 2 ** (levels + 1) >= params.coarse_size
           and crop_side / 2 ** (levels + 1) >= params.coarse_crop * params.patch):
        levels += 1
    return levels


def _has_known_pixels(hole: np.ndarray, levels: int) -> bool:
    """Whether every pyramid level of the crop keeps a known pixel to copy from."""
    for _ in range(levels + 1):
        if hole.all():
            return False
        # A coarse pixel is hole if any pixel of its (possibly partial) 2x2 block is.
        hole = np.pad(hole, ((0, hole.shape[0] % 2), (0, hole.shape[1] % 2)), mode="edge")
        hole = hole.reshape(hole.shape[0] // 2, 2, hole.shape[1] // 2, 2).any(axis=(1, 3))
    return True


def _pad(planes: list[torch.Tensor], height: int, width: int, replicate: bool) -> torch.Tensor:
    """(C,h,w) planes padded at the bottom and right to one (height, width) and stacked: (K,C,H,W).
    Replicated padding makes a patch that sticks out of its crop see the crop's edge repeated."""
    out = []
    for x in planes:
        pad = (0, width - x.shape[-1], 0, height - x.shape[-2])
        out.append(F.pad(x[None], pad, mode="replicate")[0] if replicate and any(pad) else F.pad(x, pad))
    return torch.stack(out)


def _patch_basis(image: torch.Tensor, valid: torch.Tensor, patch: int, count: int, generator) -> torch.Tensor:
    """The `count` principal patch directions of the known patches: filters (count, C, patch, patch)."""
    channels = image.shape[0]
    radius = patch // 2
    centres = valid.flatten().nonzero()[:, 0]
    if centres.numel() > 4096:
        centres = centres[torch.randperm(centres.numel(), generator=generator)[:4096].to(centres.device)]
    height, width = image.shape[-2:]
    cy, cx = centres // width, centres % width
    d = torch.arange(-radius, radius + 1, device=image.device)
    ys = (cy[:, None, None] + d[None, :, None]).expand(-1, patch, patch).clamp(0, height - 1)
    xs = (cx[:, None, None] + d[None, None, :]).expand(-1, patch, patch).clamp(0, width - 1)
    patches = image[:, ys, xs].permute(1, 0, 2, 3).reshape(centres.numel(), -1)  # (n, C*p*p)
    patches = patches - patches.mean(0, keepdim=True)
    covariance = patches.T @ patches / max(1, centres.numel() - 1)
    _, vectors = torch.linalg.eigh(covariance.cpu().double())
    basis = vectors[:, -count:].flip(1).T.float().to(image.device)  # strongest first
    return basis.reshape(-1, channels, patch, patch)


def _grouped_conv(image: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Each crop of (K,C,H,W) `image` (already padded by the patch radius) filtered by its own basis
    (K,D,C,p,p): one grouped convolution, (K,D,H',W')."""
    count, channels = image.shape[:2]
    features, patch = basis.shape[1], basis.shape[-1]
    stacked = image.reshape(1, count * channels, *image.shape[2:]).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(stacked, basis.reshape(count * features, channels, patch, patch), groups=count)
    return out.reshape(count, features, *out.shape[2:])


def _descriptors(image: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Every pixel's patch projected on its crop's basis: (K*H*W, D), rows contiguous for cheap gathers."""
    radius = basis.shape[-1] // 2
    out = _grouped_conv(F.pad(image, (radius,) * 4, mode="replicate"), basis)
    return out.permute(0, 2, 3, 1).reshape(-1, basis.shape[1])


def _descriptors_at(image: torch.Tensor, basis: torch.Tensor, tk, ty, tx) -> torch.Tensor:
    """The descriptors of pixels (tk, ty, tx) only, (N, D): one convolution over their bounding box."""
    radius = basis.shape[-1] // 2
    height, width = image.shape[-2:]
    y0, y1, x0, x1 = int(ty.min()), int(ty.max()) + 1, int(tx.min()), int(tx.max()) + 1
    top, bottom = max(0, y0 - radius), min(height, y1 + radius)
    left, right = max(0, x0 - radius), min(width, x1 + radius)
    window = image[:, :, top:bottom, left:right]
    # Replicate only where the box meets the batch's edge, as `_descriptors` does.
    pad = (radius - (x0 - left), radius - (right - x1), radius - (y0 - top), radius - (bottom - y1))
    out = _grouped_conv(F.pad(window, pad, mode="replicate"), basis)
    return out.permute(0, 2, 3, 1)[tk, ty - y0, tx - x0]


def _grow(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """`mask` (..., H, W bool) dilated by a square of side 2*radius+1 (two 1-D max filters)."""
    shape = mask.shape
    grown = F.max_pool2d(mask.reshape(-1, 1, *shape[-2:]).float(), (1, 2 * radius + 1), stride=1, padding=(0, radius))
    grown = F.max_pool2d(grown, (2 * radius + 1, 1), stride=1, padding=(radius, 0))
    return grown.reshape(shape) > 0


def _crop_medians(values: torch.Tensor, field: _Field) -> torch.Tensor:
    """The median of the finite `values` (one per target) of each crop (the lower middle, as
    torch.median), 1 where a crop has none: (crops,). One row per crop, NaN where it has no value."""
    table = torch.full((field.count, field.longest), math.nan, device=values.device)
    table[field.tk, field.rank] = torch.where(torch.isfinite(values), values, math.nan)
    middle = table.nanmedian(dim=1).values
    return torch.where(middle.isnan(), 1.0, middle)


class _Field:
    """The nearest-neighbour fields of one level, for a batch of K crops padded to (H, W):
    target pixel (tk, ty, tx) -> source centre (sy, sx) in the same crop.

    Targets are the hole grown by the patch radius: every patch that overlaps the hole is matched
    and votes, so the patches that are mostly known tie the hole's rim to its surroundings.
    Sources are the centres of patches that are wholly known and inside their crop.
    """

    def __init__(self, hole: torch.Tensor, inside: torch.Tensor, radius: int):
        self.hole = hole
        self.count, self.height, self.width = hole.shape
        grown = _grow(hole, radius) & inside
        self.targets = grown
        self.tk, self.ty, self.tx = grown.nonzero(as_tuple=True)  # crop by crop
        self.in_hole = hole[self.tk, self.ty, self.tx]
        # A patch may stick out of the crop (its outside is the edge pixel repeated): holes at the
        # photo's border need the sources along that border.
        valid = ~grown & inside
        few = valid.flatten(1).sum(1) < 16  # no whole patch is known: accept any known centre
        if bool(few.any()):
            valid = torch.where(few[:, None, None], ~hole & inside, valid)
        self.valid = valid
        self.sources = valid.flatten().nonzero()[:, 0]
        # Per crop: its extent (for clamps), its targets' and its sources' spans in the flat lists.
        rows, cols = inside.any(2).sum(1), inside.any(1).sum(1)
        self.y_max, self.x_max = (rows - 1)[self.tk], (cols - 1)[self.tk]
        self.reach = torch.maximum(rows, cols).to(torch.float32)[self.tk] / 2  # random search's widest radius
        self.target_counts = torch.bincount(self.tk, minlength=self.count).tolist()
        self.longest = max(self.target_counts)
        starts = torch.tensor([0, *self.target_counts[:-1]], device=hole.device).cumsum(0)
        self.rank = torch.arange(self.tk.numel(), device=hole.device) - starts[self.tk]  # place within its crop
        bounds = torch.arange(self.count + 1, device=hole.device) * (self.height * self.width)
        self.source_spans = torch.searchsorted(self.sources, bounds).tolist()

    def clamp(self, y: torch.Tensor, x: torch.Tensor, which=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,...) positions in the crops of the targets (or of the targets `which` picks), held
        inside those crops."""
        extra = (None,) * (y.dim() - 1)
        y_max, x_max = (self.y_max, self.x_max) if which is None else (self.y_max[which], self.x_max[which])
        return torch.minimum(y.clamp_min(0), y_max[(..., *extra)]), torch.minimum(x.clamp_min(0), x_max[(..., *extra)])

    def flat(self, crop: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (crop * self.height + y) * self.width + x

    def random_sources(self, crop: int, count: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = self.source_spans[crop], self.source_spans[crop + 1]
        pick = torch.randint(0, stop - start, (count,), generator=generator).to(self.sources.device)
        flat = self.sources[start + pick] % (self.height * self.width)
        return flat // self.width, flat % self.width

    def offset_grids(self, sy, sx):
        oy = torch.zeros(self.count, self.height, self.width, dtype=torch.long, device=sy.device)
        ox = torch.zeros_like(oy)
        oy[self.tk, self.ty, self.tx] = sy - self.ty
        ox[self.tk, self.ty, self.tx] = sx - self.tx
        return oy, ox


def _distances(target: torch.Tensor, source: torch.Tensor, field: _Field, cy, cx):
    """Descriptor distances of targets (N, D) to candidate centres (N, K) in their crops; invalid = inf."""
    cy, cx = field.clamp(cy, cx)
    flat = field.flat(field.tk[:, None], cy, cx)
    diff = source[flat] - target[:, None, :]
    dist = diff.square_().sum(-1)
    return dist.masked_fill_(~field.valid.flatten()[flat], math.inf), cy, cx


def _draws(field: _Field, shape: tuple[int, ...], generators) -> torch.Tensor:
    """Uniform draws (*shape, N) for the targets, each crop's from its own generator (on the CPU,
    so a crop's draws are the same whatever the device and whichever crops share its batch)."""
    parts = [torch.rand(*shape, n, generator=g) for n, g in zip(field.target_counts, generators)]
    return torch.cat(parts, -1).to(field.tk.device)


def _search(field: _Field, target, source, sy, sx, rounds: int, randoms: int, coherence: float, generators):
    """PatchMatch rounds for all targets of all crops at once (Jacobi style): the current match,
    propagation from the 4 neighbours at 1 and 4 pixels, and random search around the current match
    at halving radii, are scored together and the best kept.

    A candidate's score is its descriptor distance plus a coherence cost: `coherence` times its
    crop's median distance for each neighbour target whose offset differs (Ashikhmin's coherent
    synthesis, as an MRF smoothness term). Coherent fields copy whole pieces of real texture;
    without it every pixel comes from elsewhere and the centre-pixel copy at full resolution turns
    into noise."""
    tk, ty, tx = field.tk, field.ty, field.tx
    # The 4 neighbours at 1 pixel (the first 4: the coherence term's), then at 4 pixels.
    step_y = torch.tensor([1, -1, 0, 0, 4, -4, 0, 0], device=ty.device)
    step_x = torch.tensor([0, 0, 1, -1, 0, 0, 4, -4], device=ty.device)
    qy, qx = field.clamp(ty[:, None] + step_y, tx[:, None] + step_x)  # (N, 8)
    near = tk[:, None], qy[:, :4], qx[:, :4]
    near_targets = field.targets[near]  # (N, 4)
    log_reach = field.reach.log()
    dist = None
    for _ in range(rounds):
        oy, ox = field.offset_grids(sy, sx)
        # A neighbour outside the targets has no offset: its candidate is the pixel itself (invalid).
        next_oy, next_ox = oy[tk[:, None], qy, qx], ox[tk[:, None], qy, qx]
        cand_y, cand_x = [sy[:, None], ty[:, None] + next_oy], [sx[:, None], tx[:, None] + next_ox]
        if randoms:
            # PatchMatch samples at radii halving from the window to one pixel; drawing the radius
            # log-uniformly per pixel and candidate covers the same scales with any candidate count.
            draws = _draws(field, (3, randoms), generators)
            radius = torch.exp(draws[0] * log_reach) + 0.5
            cand_y.append((sy + ((draws[1] * 2 - 1) * radius).round().long()).T)
            cand_x.append((sx + ((draws[2] * 2 - 1) * radius).round().long()).T)
        dist, cy, cx = _distances(target, source, field, torch.cat(cand_y, 1), torch.cat(cand_x, 1))
        cost = dist
        if coherence > 0:
            scale = coherence * _crop_medians(dist[:, 0], field)[tk]
            cand_oy, cand_ox = cy - ty[:, None], cx - tx[:, None]  # (N, M)
            same = (cand_oy[:, :, None] == next_oy[:, None, :4]) & (cand_ox[:, :, None] == next_ox[:, None, :4])
            differ = (~same & near_targets[:, None, :]).sum(2).to(dist.dtype)
            cost = dist + scale[:, None] * differ
        pick = cost.argmin(1, keepdim=True)
        sy, sx = cy.gather(1, pick)[:, 0], cx.gather(1, pick)[:, 0]
        dist = dist.gather(1, pick)[:, 0]
    return sy, sx, dist


def _exhaustive(target: torch.Tensor, source: torch.Tensor, field: _Field, chunk: int = 2048):
    """The exact nearest source descriptor of every target descriptor in its crop (small levels only)."""
    plane = field.height * field.width
    best, start = [], 0
    for crop, members in enumerate(field.target_counts):
        sources = field.sources[field.source_spans[crop]:field.source_spans[crop + 1]]
        candidates = source[sources]  # (S, D)
        norms = candidates.square().sum(1)
        for first in range(start, start + members, chunk):
            last = min(first + chunk, start + members)
            scores = norms[None] - 2 * target[first:last] @ candidates.T
            best.append(sources[scores.argmin(1)] % plane)
        start += members
    flat = torch.cat(best)
    return flat // field.width, flat % field.width


def _vote(image: torch.Tensor, field: _Field, sy, sx, dist, radius: int, sharpness: float = 1.0) -> torch.Tensor:
    """Each hole pixel of (K,C,H,W) `image` becomes the weighted mean of what the overlapping matched
    patches say about it (Wexler et al.): the patch of target q = p - d puts source pixel
    p + offset(q) at p, with weight exp(-sharpness * (distance(q) - best distance around p) / median
    distance of the crop)."""
    pick = field.in_hole
    hk, hy, hx = field.tk[pick], field.ty[pick], field.tx[pick]
    oy, ox = field.offset_grids(sy, sx)
    scale = _crop_medians(dist, field).clamp_min(1e-3)[hk]
    dist_grid = torch.full((field.count, field.height, field.width), math.inf, device=image.device)
    dist_grid[field.tk, field.ty, field.tx] = dist
    dy, dx = _window(radius, image.device)
    qy, qx = field.clamp(hy[:, None] - dy[None], hx[:, None] - dx[None], pick)
    crop = hk[:, None]
    near = dist_grid[crop, qy, qx]  # inf outside the targets: only matched patches vote
    near = near - near.min(1, keepdim=True).values  # p itself is a target: the minimum is finite
    weight = torch.exp(-sharpness / scale[:, None] * near)
    py, px = field.clamp(hy[:, None] + oy[crop, qy, qx], hx[:, None] + ox[crop, qy, qx], pick)
    votes = image[crop, :, py, px]  # (N, V, C)
    filled = image.clone()
    filled[hk, :, hy, hx] = (votes * weight[..., None]).sum(1) / weight.sum(1)[:, None]
    return filled


def _copy(image: torch.Tensor, field: _Field, sy, sx) -> torch.Tensor:
    """Each hole pixel takes the centre pixel of its own match: real pixels, no averaging."""
    filled = image.clone()
    pick = field.in_hole
    crop = field.tk[pick]
    filled[crop, :, field.ty[pick], field.tx[pick]] = image[crop, :, sy[pick], sx[pick]]
    return filled


def _window(radius: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return dy.flatten(), dx.flatten()


def onion_fill(image: torch.Tensor, hole: torch.Tensor, valid: torch.Tensor, radius: int):
    """First guess of a small (coarsest-level) hole of one crop (C,H,W): peel it from the rim inward,
    one ring at a time; each ring pixel copies the centre of the known patch that best matches its
    known part, searched exhaustively as one matrix product per ring (the onion-peel order of
    exemplar inpainting, A. Criminisi, P. Perez, K. Toyama, IEEE TIP 2004, without the priority term).

    Returns the filled image.
    """
    height, width = hole.shape
    dy, dx = _window(radius, image.device)
    sources = valid.flatten().nonzero()[:, 0]
    sy_all, sx_all = sources // width, sources % width
    ys, xs = (sy_all[:, None] + dy).clamp(0, height - 1), (sx_all[:, None] + dx).clamp(0, width - 1)
    patches = image[:, ys, xs].permute(1, 0, 2).flatten(1)  # (S, C*P)
    weights = torch.cat([-2 * patches, patches.square()], 1).T  # (2CP, S)
    filled = image.clone()
    known = ~hole
    channels = image.shape[0]
    while True:
        ring = hole & ~known & _grow(known, 1)
        if not bool(ring.any()):
            break
        ry, rx = ring.nonzero(as_tuple=True)
        py = (ry[:, None] + dy).clamp(0, height - 1)
        px = (rx[:, None] + dx).clamp(0, width - 1)
        seen = known[py, px].float()  # (R, P): which pixels of the ring patch are known
        target = filled[:, py, px].permute(1, 0, 2)  # (R, C, P)
        seen_c = seen[:, None, :].expand(-1, channels, -1).flatten(1)
        # Masked SSD to every source, up to a per-row constant: sum m*(s^2 - 2 t s).
        dist = torch.cat([seen_c * target.flatten(1), seen_c], 1) @ weights
        best = dist.argmin(1)
        filled[:, ry, rx] = image[:, sy_all[best], sx_all[best]]
        known = known | ring
    return filled


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (K,C,H,W), edges replicated."""
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-x.square() / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    out = F.pad(image, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def recombine(image: torch.Tensor, hole: torch.Tensor, coarse: torch.Tensor, coarse_known: torch.Tensor,
              field: _Field, sy, sx, dist, sigma: float, vote_radius: int, sharpness: float) -> torch.Tensor:
    """The final fill of (K,C,H,W): the smooth layer of the coarse completion plus the fine layer of
    the matched source pixels (structure + texture, M. Bertalmio et al., "Simultaneous Structure and
    Texture Image Inpainting", IEEE TIP 2003).

    `coarse` is the completed crop at half resolution, `coarse_known` its known pixels. Below
    `sigma` (full-resolution pixels) the fill follows the coarse completion, which meets the rim
    without a seam and guesses conservatively where the photo is unpredictable; above it, every
    pixel carries the real grain and detail of its source, by a vote that favours the best match
    (coherent regions are plain copies, only seams are blended). Both smooth layers are taken at
    half resolution, where they cost a quarter.
    """
    height, width = hole.shape[-2:]

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)[:, :, :height, :width]

    known = coarse_known.to(coarse.dtype)[:, None]
    # The photo's own smooth layer, from known pixels only (the hole holds the removed object).
    source_smooth = gaussian_blur(coarse * known, sigma / 2) / gaussian_blur(known, sigma / 2).clamp_min(1e-3)
    detail = _vote(image - up(source_smooth), field, sy, sx, dist, vote_radius, sharpness)
    return torch.where(hole[:, None], up(gaussian_blur(coarse, sigma / 2)) + detail, image)


def gradient_maps(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """|d/dx| and |d/dy| of the grey level between known neighbours, with the known-pair masks: (4,H,W).

    Averaged down the pyramid and over a window (`texture_channels`), they say how busy the
    full-resolution texture is around a pixel at every level.
    """
    grey = image.mean(0)
    known = (~hole).to(image.dtype)
    kx = F.pad(known[:, 1:] * known[:, :-1], (0, 1))
    ky = F.pad(known[1:] * known[:-1], (0, 0, 0, 1))
    gx = F.pad((grey[:, 1:] - grey[:, :-1]).abs(), (0, 1)) * kx
    gy = F.pad((grey[1:] - grey[:-1]).abs(), (0, 0, 0, 1)) * ky
    return torch.stack([gx, gy, kx, ky])


def texture_channels(maps: torch.Tensor, window: int) -> torch.Tensor:
    """Mean |gradient| over a window, from known pairs only: (K,2,H,W), from `gradient_maps` (pooled,
    zero beyond each crop, so that only the crop's own pairs count).

    Carried through the votes like colours, they keep the fill from settling on smooth patches,
    which a blurry first guess always prefers (A. Newson et al., "Video Inpainting of Complex
    Scenes", SIAM J. Imaging Sciences 2014).
    """
    pooled = F.avg_pool2d(maps, window, stride=1, padding=window // 2, count_include_pad=False)
    return pooled[:, :2] / pooled[:, 2:].clamp_min(1e-3)


@dataclass
class _Crop:
    """One mask component of one image: its crop (C,h,w float32), its hole, its random generator."""

    pixels: torch.Tensor
    hole: torch.Tensor
    generator: torch.Generator
    levels: int


@dataclass
class _Levels:
    """The crops' pyramids, each level padded into one stack, with each crop's own size there."""

    params: ExemplarConfig
    colours: int
    levels: int
    pyramids: list
    stacks: list[torch.Tensor]
    holes: list[torch.Tensor]
    insides: list[torch.Tensor]
    sizes: list[list]
    edge_holes: list[list[int]]  # per level, the crops whose hole reaches their bottom or right edge

    def pixels(self, level: int) -> torch.Tensor:
        """What patches are compared by at `level`: colours, and texture channels where it searches."""
        params, colours, stack = self.params, self.colours, self.stacks[level]
        if (level < params.plain_levels and level < self.levels) or params.texture_weight == 0:
            return stack[:, :colours]  # no search here: colours are all the votes need
        window = max(3, (params.patch >> level) | 1)
        texture = texture_channels(stack[:, colours:], window)
        if len(self.sizes[level]) > 1:  # beyond a crop its texture repeats its edge, as its colours do
            height, width = texture.shape[-2:]
            texture = _pad([texture[k, :, :h, :w] for k, (h, w) in enumerate(self.sizes[level])], height, width, True)
        return torch.cat([stack[:, :colours], params.texture_weight * texture], 1)

    def repad(self, image: torch.Tensor, level: int) -> torch.Tensor:
        """Beyond a crop whose hole reaches its bottom or right edge, repeat the edge as it is now
        filled (a lone crop's patches see the filled edge repeated there)."""
        for k in self.edge_holes[level]:
            height, width = self.sizes[level][k]
            image[k, :, :height, width:] = image[k, :, :height, width - 1 : width]
            image[k, :, height:] = image[k, :, height - 1 : height]
        return image


def _stack_levels(crops: list[_Crop], params: ExemplarConfig) -> _Levels:
    levels, colours = crops[0].levels, crops[0].pixels.shape[0]
    # Each crop's pyramid on its own (colours, and the gradient maps the texture channels pool).
    pyramids = []
    for c in crops:
        stack = torch.cat([c.pixels, gradient_maps(c.pixels, c.hole)]) if params.texture_weight > 0 else c.pixels
        pyramids.append(_pyramid(stack, c.hole, levels))
    stacks, holes, insides, sizes = [], [], [], []
    for level in range(levels + 1):
        planes = [p[0][level] for p in pyramids]
        sizes.append([x.shape[1:] for x in planes])
        height, width = max(x.shape[1] for x in planes), max(x.shape[2] for x in planes)
        colour = _pad([x[:colours] for x in planes], height, width, replicate=True)
        maps = _pad([x[colours:] for x in planes], height, width, replicate=False)
        stacks.append(torch.cat([colour, maps], 1))
        holes.append(_pad([p[1][level][None] for p in pyramids], height, width, replicate=False)[:, 0])
        inside = torch.zeros_like(holes[-1])
        for k, x in enumerate(planes):
            inside[k, : x.shape[1], : x.shape[2]] = True
        insides.append(inside)
    edge_holes = [[k for k, (height, width) in enumerate(sizes[level])
                   if (height, width) != tuple(holes[level].shape[1:])
                   and bool(pyramids[k][1][level][-1].any() | pyramids[k][1][level][:, -1].any())]
                  for level in range(levels + 1)]
    return _Levels(params, colours, levels, pyramids, stacks, holes, insides, sizes, edge_holes)


def _onion_start(stack: _Levels, level: int, level_image: torch.Tensor, field: _Field, radius: int) -> torch.Tensor:
    """The coarsest level's first guess, each crop at its own size: the onion peels from its own rim."""
    current = level_image.clone()
    level_hole = stack.holes[level]
    for k, (height, width) in enumerate(stack.sizes[level]):
        own = (slice(None, height), slice(None, width))
        current[k, :, :height, :width] = onion_fill(level_image[k][:, own[0], own[1]], level_hole[k][own],
                                                    field.valid[k][own], radius)
    return stack.repad(current, level)


def _em_level(stack: _Levels, level: int, level_image: torch.Tensor, field: _Field, current: torch.Tensor,
              match: tuple, generators) -> tuple[torch.Tensor, tuple]:
    """Expectation-maximisation at one level: search the nearest-neighbour field, then vote (or,
    at full resolution, copy). Returns the new pixels and the field `(sy, sx, dist)`."""
    params, radius = stack.params, stack.params.patch // 2
    sy, sx, dist = match
    basis = torch.stack([_patch_basis(level_image[k], field.valid[k], params.patch, params.features, g)
                         for k, g in enumerate(generators)])
    source = _descriptors(level_image, basis)
    if sy is None:
        # The coarsest level is small: match every target exhaustively, as one matrix product.
        target = _descriptors_at(current, basis, field.tk, field.ty, field.tx)
        sy, sx = _exhaustive(target, source, field)
        dist = torch.zeros(sy.shape, device=sy.device)
    rounds = params.em_coarse if level == stack.levels else params.em_levels if level > 0 else params.em_fine
    for em in range(rounds):
        target = _descriptors_at(current, basis, field.tk, field.ty, field.tx)
        search = params.search_rounds * (params.first_search if level == stack.levels and em == 0 else 1)
        sy, sx, dist = _search(field, target, source, sy, sx, search,
                               params.random_candidates, params.coherence, generators)
        if level > 0:
            current = stack.repad(_vote(level_image, field, sy, sx, dist, radius, params.coarse_sharpness), level)
        else:
            current = stack.repad(_copy(level_image, field, sy, sx), level)
    return current, (sy, sx, dist)


def fill_crops(crops: list[_Crop], params: ExemplarConfig) -> list[torch.Tensor]:
    """Fill the holes of crops that share a pyramid depth, together; each from its own known pixels.

    Returns each crop's colours (C,h,w), filled.
    """
    radius = params.patch // 2
    stack = _stack_levels(crops, params)
    generators = [c.generator for c in crops]
    sy = sx = dist = previous = coarse = None
    for level in range(stack.levels, -1, -1):
        level_image = stack.pixels(level)
        field = _Field(stack.holes[level], stack.insides[level], radius)
        if sy is None:
            current = _onion_start(stack, level, level_image, field, radius)
        else:
            sy, sx, dist = _upsample_field(previous, field, sy, sx, dist, generators)
            # Uniform weights: the coarse distances do not rank the doubled matches well.
            uniform = torch.zeros_like(dist)
            if level > 0:
                current = stack.repad(_vote(level_image, field, sy, sx, uniform, radius), level)
            else:
                current = stack.repad(_copy(level_image, field, sy, sx), level)
        # Fine levels without a search inherit the field: the copy happens at full resolution below.
        if not (level < params.plain_levels and level < stack.levels):
            current, (sy, sx, dist) = _em_level(stack, level, level_image, field, current, (sy, sx, dist), generators)
        previous = field
        if level == 1:
            coarse = current[:, : stack.colours]
    image = stack.stacks[0][:, : stack.colours]
    if stack.levels == 0 or params.detail_sigma <= 0:  # a small hole, or no layers: real pixels, voted
        filled = _vote(image, field, sy, sx, dist, params.fine_vote, params.fine_sharpness)
    else:
        # Known at half resolution; beyond a crop, as its edge (where a hole may reach it).
        height, width = stack.holes[1].shape[-2:]
        coarse_known = _pad([(~p[1][1]).float()[None] for p in stack.pyramids], height, width, replicate=True)[:, 0] > 0.5
        filled = recombine(image, stack.holes[0], coarse, coarse_known, field, sy, sx, dist, params.detail_sigma,
                           params.fine_vote, params.fine_sharpness)
    return [filled[k, :, : c.hole.shape[0], : c.hole.shape[1]] for k, c in enumerate(crops)]


def _upsample_field(coarse: _Field, fine: _Field, sy, sx, dist, generators):
    """Double a coarse field: each fine target takes its coarse pixel's offset (and distance)."""
    oy, ox = coarse.offset_grids(sy, sx)
    dist_grid = torch.zeros(coarse.count, coarse.height, coarse.width, device=sy.device)
    if dist is not None:
        dist_grid[coarse.tk, coarse.ty, coarse.tx] = dist.clamp_max(1e30)
    ck, cy, cx = fine.tk, fine.ty // 2, fine.tx // 2
    sy, sx = fine.clamp(fine.ty + 2 * oy[ck, cy, cx], fine.tx + 2 * ox[ck, cy, cx])
    lost = ~fine.valid[ck, sy, sx]
    lost_counts = torch.bincount(ck[lost], minlength=fine.count).tolist() if bool(lost.any()) else []
    for crop, count in enumerate(lost_counts):  # fine targets whose coarse pixel had no match: start them anywhere
        if count:
            where = lost & (ck == crop)
            sy[where], sx[where] = fine.random_sources(crop, count, generators[crop])
    return sy, sx, dist_grid[ck, cy, cx]


class Exemplar(BatchesOnDevice, EditStage):
    kind = "clean"
    name = "exemplar"
    version = "3"  # bump when the output bytes change: finished work is keyed by it
    copies_grain = True  # the fill is the photo's own pixels, grain included (see Regrain)

    def __init__(self, params: ExemplarConfig, device: torch.device, cpu_batch: int | None = None):
        """`cpu_batch`: crops filled together on the CPU (1: each alone; more runs CUDA's batching there)."""
        self.params = params
        self.device = device
        self._set_cpu_batch(cpu_batch)

    @classmethod
    def from_config(cls, config) -> Exemplar:
        return cls(config.exemplar, pick_device(config.device))

    def _margin(self, mask: np.ndarray) -> int:
        extents = [max(r.stop - r.start, c.stop - c.start) for r, c in mask_components(mask, 0)]
        margin = int(self.params.margin_ratio * max(extents, default=0))
        return min(self.params.max_margin, max(self.params.min_margin, margin))

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray:
        return self.run_many([(image, mask, context)])[0]

    def run_many(self, items: list[tuple[np.ndarray, np.ndarray, EditContext]], in_place: bool = False) -> list[np.ndarray]:
        """`__call__` over several `(image, mask, context)` of one partition (`in_place`: see `tasks.stages`).

        On CUDA the crops of all the images are filled in batches of up to `exemplar.batch` crops
        of one pyramid depth. On the CPU each crop is filled alone (batching buys nothing there),
        so an image's bytes are the same whichever images share its call; on CUDA a kernel may
        pick another algorithm for another batch shape, so a value may differ in its last bits
        and a near tie between two matches may fall the other way.
        """
        outputs = [image.copy() for image, _, _ in items]
        pending: list[tuple[int, slice, slice, _Crop]] = []
        for index, (image, mask, context) in enumerate(items):
            if not mask.any():
                continue
            for number, (rows, cols) in enumerate(mask_components(mask, self._margin(mask))):
                crop, hole = image[rows, cols], mask[rows, cols]
                levels = _levels(hole, self.params)
                if not _has_known_pixels(hole, levels):
                    continue  # nothing known to copy from: leave the crop as it is
                pixels = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device, torch.float32)
                pixels = pixels[None] if crop.ndim == 2 else pixels.permute(2, 0, 1)
                # A generator per component, seeded from the row: draws never depend on other crops.
                generator = torch.Generator().manual_seed((int(context.seed) + number) & 0x7FFF_FFFF_FFFF_FFFF)
                hole_t = torch.from_numpy(np.ascontiguousarray(hole)).to(self.device)
                pending.append((index, rows, cols, _Crop(pixels, hole_t, generator, levels)))
        size = self.batch_size(self.params.batch)
        by_kind: dict[tuple[int, int], list] = {}  # a batch shares a pyramid depth and a channel count
        for entry in pending:
            by_kind.setdefault((entry[3].levels, entry[3].pixels.shape[0]), []).append(entry)
        # Full float32 convolutions: cuDNN's default TF32 rounds descriptors to 10 bits, enough to
        # move matches; a fixed algorithm per shape, so a rerun gives the same bytes.
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
            for group in by_kind.values():
                # Similar sizes together: padding a small crop to a large one wastes the GPU's time.
                group.sort(key=lambda entry: entry[3].hole.numel())
                for start in range(0, len(group), size):
                    chunk = group[start : start + size]
                    for (index, rows, cols, _), filled in zip(chunk, fill_crops([e[3] for e in chunk], self.params)):
                        filled = filled[0] if outputs[index].ndim == 2 else filled.permute(1, 2, 0)
                        outputs[index][rows, cols] = filled.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return write_back(items, outputs) if in_place else outputs
