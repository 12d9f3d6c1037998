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
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from tasks.masks import mask_components


class ExemplarConfig(BaseModel):
    """The knobs of the exemplar engine (defaults tuned on the clean benchmark)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patch: int = Field(7, ge=3, le=15, description="Patch side in pixels (odd).")
    features: int = Field(12, ge=2, le=64, description="Principal components a patch is compared by.")
    coarse_size: int = Field(24, ge=4, description="The hole's extent, in pixels, at the coarsest pyramid level.")
    coarse_crop: float = Field(4.0, ge=1.5, description="The crop's shorter side, in patches, at the coarsest level.")
    margin_ratio: float = Field(1.0, ge=0, description="Crop margin around a hole, as a multiple of the hole's extent.")
    min_margin: int = Field(24, ge=4, description="Smallest crop margin in pixels.")
    max_margin: int = Field(256, ge=4, description="Largest crop margin in pixels.")
    em_coarse: int = Field(6, ge=0, description="EM rounds at the coarsest level.")
    em_levels: int = Field(3, ge=1, description="EM rounds at each intermediate level.")
    em_fine: int = Field(1, ge=0, description="Search-and-copy rounds at full resolution (when plain_levels is 0).")
    search_rounds: int = Field(2, ge=1, description="PatchMatch rounds per EM round.")
    first_search: int = Field(4, ge=1, description="Search rounds multiplier before the first vote.")
    random_candidates: int = Field(4, ge=0, description="Random-search candidates per PatchMatch round.")
    coherence: float = Field(0.25, ge=0, description="Cost of an offset change between neighbours, in median patch distances.")
    fine_vote: int = Field(1, ge=0, le=7, description="Radius of the vote at full resolution; 0 = each pixel from its own match.")
    coarse_sharpness: float = Field(1.0, ge=0, description="How strongly the coarse votes favour the best matches.")
    fine_sharpness: float = Field(16.0, ge=0, description="How strongly the full-resolution vote favours the best match.")
    plain_levels: int = Field(2, ge=0, description="Finest levels that inherit the coarse field without searching.")
    detail_sigma: float = Field(2.0, ge=0, description="Scale (px) below which the fill copies source pixels; 0 = copy all.")
    texture_weight: float = Field(3.0, ge=0, description="Weight of the texture channels (local mean |gradient|) in patch distances.")


def _device(config) -> torch.device:
    wanted = getattr(config, "device", "auto")
    if wanted != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _pyramid(image: torch.Tensor, hole: torch.Tensor, levels: int):
    """Images (C,h,w) and holes (h,w) from fine to coarse; a coarse pixel is hole if any of its 2x2 is."""
    images, holes = [image], [hole]
    for _ in range(levels):
        images.append(F.avg_pool2d(images[-1][None], 2, ceil_mode=True)[0])
        holes.append(F.max_pool2d(holes[-1][None, None].float(), 2, ceil_mode=True)[0, 0] > 0)
    return images, holes


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


def _descriptors(image: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Every pixel's patch projected on the basis: (H*W, D), rows contiguous for cheap gathers."""
    radius = basis.shape[-1] // 2
    padded = F.pad(image[None], (radius,) * 4, mode="replicate").contiguous(memory_format=torch.channels_last)
    return F.conv2d(padded, basis).permute(0, 2, 3, 1).reshape(-1, basis.shape[0])


def _descriptors_at(image: torch.Tensor, basis: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The descriptors of pixels (ys, xs) only, (N, D): one convolution over their bounding box."""
    radius = basis.shape[-1] // 2
    height, width = image.shape[-2:]
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    top, bottom = max(0, y0 - radius), min(height, y1 + radius)
    left, right = max(0, x0 - radius), min(width, x1 + radius)
    window = image[None, :, top:bottom, left:right]
    # Replicate only where the box meets the crop's edge, as `_descriptors` does.
    pad = (radius - (x0 - left), radius - (right - x1), radius - (y0 - top), radius - (bottom - y1))
    window = F.pad(window, pad, mode="replicate").contiguous(memory_format=torch.channels_last)
    out = F.conv2d(window, basis)[0]
    return out[:, ys - y0, xs - x0].T.contiguous()


def _grow(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """`mask` (H,W bool) dilated by a square of side 2*radius+1 (two 1-D max filters)."""
    grown = F.max_pool2d(mask[None, None].float(), (1, 2 * radius + 1), stride=1, padding=(0, radius))
    return F.max_pool2d(grown, (2 * radius + 1, 1), stride=1, padding=(radius, 0))[0, 0] > 0


class _Field:
    """The nearest-neighbour field of one level: target pixel (ty, tx) -> source centre (sy, sx).

    Targets are the hole grown by the patch radius: every patch that overlaps the hole is matched
    and votes, so the patches that are mostly known tie the hole's rim to its surroundings.
    Sources are the centres of patches that are wholly known and inside the crop.
    """

    def __init__(self, hole: torch.Tensor, radius: int):
        self.hole = hole
        self.height, self.width = hole.shape
        grown = _grow(hole, radius)
        self.targets = grown
        self.ty, self.tx = grown.nonzero(as_tuple=True)
        self.in_hole = hole[self.ty, self.tx]
        # A patch may stick out of the crop (its outside is the edge pixel repeated): holes at the
        # photo's border need the sources along that border.
        valid = ~grown
        if int(valid.sum()) < 16:  # no whole patch is known: accept any known centre
            valid = ~hole
        self.valid = valid
        self.sources = valid.flatten().nonzero()[:, 0]

    def random_sources(self, count: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randint(0, self.sources.numel(), (count,), generator=generator).to(self.sources.device)
        flat = self.sources[pick]
        return flat // self.width, flat % self.width

    def offset_grids(self, sy, sx):
        oy = torch.zeros(self.height, self.width, dtype=torch.long, device=sy.device)
        ox = torch.zeros_like(oy)
        oy[self.ty, self.tx] = sy - self.ty
        ox[self.ty, self.tx] = sx - self.tx
        return oy, ox


def _distances(target: torch.Tensor, source: torch.Tensor, valid: torch.Tensor, cy, cx, width: int):
    """Descriptor distances of hole pixels (N, D) to candidate centres (N, K); invalid = inf."""
    cy = cy.clamp(0, valid.shape[0] - 1)
    cx = cx.clamp(0, width - 1)
    flat = cy * width + cx
    diff = source[flat] - target[:, None, :]
    dist = diff.square_().sum(-1)
    return dist.masked_fill_(~valid.flatten()[flat], math.inf), cy, cx


def _search(field: _Field, target, source, sy, sx, rounds: int, randoms: int, coherence: float, generator):
    """PatchMatch rounds for all hole pixels at once (Jacobi style): the current match, propagation
    from the 4 neighbours at 1 and 4 pixels, and random search around the current match at halving
    radii, are scored together and the best kept.

    A candidate's score is its descriptor distance plus a coherence cost: `coherence` times the
    median distance for each hole neighbour whose offset differs (Ashikhmin's coherent synthesis,
    as an MRF smoothness term). Coherent fields copy whole pieces of real texture; without it every
    pixel comes from elsewhere and the centre-pixel copy at full resolution turns into noise."""
    ty, tx, width, height = field.ty, field.tx, field.width, field.height
    radius0 = max(height, width) / 2
    steps = [(dy * step, dx * step) for step in (1, 4) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    dist = None
    for _ in range(rounds):
        oy, ox = field.offset_grids(sy, sx)
        cand_y, cand_x = [sy], [sx]
        neighbours = []
        for dy, dx in steps:
            qy, qx = (ty + dy).clamp(0, height - 1), (tx + dx).clamp(0, width - 1)
            # A neighbour outside the targets has no offset: its candidate is the pixel itself (invalid).
            cand_y.append(ty + oy[qy, qx])
            cand_x.append(tx + ox[qy, qx])
            if abs(dy) + abs(dx) == 1:
                neighbours.append((qy, qx))
        if randoms:
            # PatchMatch samples at radii halving from the window to one pixel; drawing the radius
            # log-uniformly per pixel and candidate covers the same scales with any candidate count.
            draws = torch.rand(3, randoms, ty.numel(), generator=generator).to(ty.device)
            radius = torch.exp(draws[0] * math.log(radius0)) + 0.5
            cand_y.extend(sy + ((draws[1] * 2 - 1) * radius).round().long())
            cand_x.extend(sx + ((draws[2] * 2 - 1) * radius).round().long())
        dist, cy, cx = _distances(target, source, field.valid, torch.stack(cand_y, 1), torch.stack(cand_x, 1),
                                  width)
        cost = dist
        if coherence > 0:
            finite = dist[:, 0][torch.isfinite(dist[:, 0])]
            scale = coherence * (finite.median() if finite.numel() else dist.new_tensor(1.0))
            cand_oy, cand_ox = cy - ty[:, None], cx - tx[:, None]
            differ = torch.zeros_like(dist)
            for qy, qx in neighbours:
                same = (cand_oy == oy[qy, qx][:, None]) & (cand_ox == ox[qy, qx][:, None])
                differ += (~same & field.targets[qy, qx][:, None]).float()
            cost = dist + scale * differ
        pick = cost.argmin(1, keepdim=True)
        sy, sx = cy.gather(1, pick)[:, 0], cx.gather(1, pick)[:, 0]
        dist = dist.gather(1, pick)[:, 0]
    return sy, sx, dist


def _exhaustive(target: torch.Tensor, source: torch.Tensor, field: _Field, chunk: int = 2048):
    """The exact nearest source descriptor of every target descriptor (small levels only)."""
    candidates = source[field.sources]  # (S, D)
    norms = candidates.square().sum(1)
    best = []
    for start in range(0, target.shape[0], chunk):
        scores = norms[None] - 2 * target[start:start + chunk] @ candidates.T
        best.append(field.sources[scores.argmin(1)])
    flat = torch.cat(best)
    return flat // field.width, flat % field.width


def _vote(image: torch.Tensor, field: _Field, sy, sx, dist, radius: int, sharpness: float = 1.0) -> torch.Tensor:
    """Each hole pixel becomes the weighted mean of what the overlapping matched patches say about it
    (Wexler et al.): the patch of target q = p - d puts source pixel p + offset(q) at p, with weight
    exp(-sharpness * (distance(q) - best distance around p) / median distance)."""
    hy, hx = field.ty[field.in_hole], field.tx[field.in_hole]
    oy, ox = field.offset_grids(sy, sx)
    finite = torch.isfinite(dist)
    scale = dist[finite].median().clamp_min(1e-3) if bool(finite.any()) else dist.new_tensor(1.0)
    dist_grid = torch.full((field.height, field.width), math.inf, device=image.device)
    dist_grid[field.ty, field.tx] = dist
    dy, dx = _window(radius, image.device)
    qy = (hy[:, None] - dy[None]).clamp(0, field.height - 1)
    qx = (hx[:, None] - dx[None]).clamp(0, field.width - 1)
    near = dist_grid[qy, qx]  # inf outside the targets: only matched patches vote
    near = near - near.min(1, keepdim=True).values  # p itself is a target: the minimum is finite
    weight = torch.exp(-sharpness / scale * near)
    py = (hy[:, None] + oy[qy, qx]).clamp(0, field.height - 1)
    px = (hx[:, None] + ox[qy, qx]).clamp(0, field.width - 1)
    votes = image[:, py, px]  # (C, N, V)
    filled = image.clone()
    filled[:, hy, hx] = (votes * weight).sum(-1) / weight.sum(-1)
    return filled


def _copy(image: torch.Tensor, field: _Field, sy, sx) -> torch.Tensor:
    """Each hole pixel takes the centre pixel of its own match: real pixels, no averaging."""
    filled = image.clone()
    pick = field.in_hole
    filled[:, field.ty[pick], field.tx[pick]] = image[:, sy[pick], sx[pick]]
    return filled


def _window(radius: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return dy.flatten(), dx.flatten()


def onion_fill(image: torch.Tensor, hole: torch.Tensor, valid: torch.Tensor, radius: int):
    """First guess of a small (coarsest-level) hole: peel it from the rim inward, one ring at a time;
    each ring pixel copies the centre of the known patch that best matches its known part,
    searched exhaustively as one matrix product per ring (the onion-peel order of exemplar
    inpainting, A. Criminisi, P. Perez, K. Toyama, IEEE TIP 2004, without the priority term).

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
    """Separable Gaussian blur of (C,H,W), edges replicated."""
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-x.square() / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    out = F.pad(image[None], (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)[0]


def recombine(image: torch.Tensor, hole: torch.Tensor, coarse: torch.Tensor, coarse_known: torch.Tensor,
              field: _Field, sy, sx, dist, sigma: float, vote_radius: int, sharpness: float) -> torch.Tensor:
    """The final fill: the smooth layer of the coarse completion plus the fine layer of the matched
    source pixels (structure + texture, M. Bertalmio et al., "Simultaneous Structure and Texture
    Image Inpainting", IEEE TIP 2003).

    `coarse` is the completed crop at half resolution, `coarse_known` its known pixels. Below
    `sigma` (full-resolution pixels) the fill follows the coarse completion, which meets the rim
    without a seam and guesses conservatively where the photo is unpredictable; above it, every
    pixel carries the real grain and detail of its source, by a vote that favours the best match
    (coherent regions are plain copies, only seams are blended). Both smooth layers are taken at
    half resolution, where they cost a quarter.
    """
    height, width = hole.shape

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None], scale_factor=2, mode="bilinear", align_corners=False)[0, :, :height, :width]

    known = coarse_known.to(coarse.dtype)[None]
    # The photo's own smooth layer, from known pixels only (the hole holds the removed object).
    source_smooth = gaussian_blur(coarse * known, sigma / 2) / gaussian_blur(known, sigma / 2).clamp_min(1e-3)
    detail = _vote(image - up(source_smooth), field, sy, sx, dist, vote_radius, sharpness)
    return torch.where(hole, up(gaussian_blur(coarse, sigma / 2)) + detail, image)


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
    """Mean |gradient| over a window, from known pairs only: (2,H,W), from `gradient_maps` (pooled).

    Carried through the votes like colours, they keep the fill from settling on smooth patches,
    which a blurry first guess always prefers (A. Newson et al., "Video Inpainting of Complex
    Scenes", SIAM J. Imaging Sciences 2014).
    """
    pooled = F.avg_pool2d(maps[None], window, stride=1, padding=window // 2, count_include_pad=False)[0]
    return pooled[:2] / pooled[2:].clamp_min(1e-3)


def fill_crop(image: torch.Tensor, hole: torch.Tensor, params: ExemplarConfig, generator) -> torch.Tensor:
    """Fill `hole` (H,W bool) of `image` (C,H,W float32) from the crop's known pixels."""
    radius = params.patch // 2
    colours = image.shape[0]
    stack = torch.cat([image, gradient_maps(image, hole)]) if params.texture_weight > 0 else image
    rows, cols = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
    extent = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1
    crop_side = min(hole.shape)
    levels = 0
    # Coarsen until the hole is small, while the crop still holds several patches.
    while (extent / 2 ** (levels + 1) >= params.coarse_size
           and crop_side / 2 ** (levels + 1) >= params.coarse_crop * params.patch):
        levels += 1
    stacks, holes = _pyramid(stack, hole, levels)

    def level_pixels(level: int) -> torch.Tensor:
        if level < params.plain_levels and level < levels or params.texture_weight == 0:
            return stacks[level][:colours]  # no search here: colours are all the votes need
        window = max(3, (params.patch >> level) | 1)
        texture = texture_channels(stacks[level][colours:], window)
        return torch.cat([stacks[level][:colours], params.texture_weight * texture])

    sy = sx = dist = None
    for level in range(levels, -1, -1):
        level_image, level_hole = level_pixels(level), holes[level]
        field = _Field(level_hole, radius)
        if field.sources.numel() == 0:
            return image[:colours]  # nothing known to copy from: leave the crop as it is
        if sy is None:
            current = onion_fill(level_image, level_hole, field.valid, radius)
        else:
            sy, sx, dist = _upsample_field(previous, field, sy, sx, dist, generator)
            # Uniform weights: the coarse distances do not rank the doubled matches well.
            uniform = torch.zeros_like(dist)
            if level > 0:
                current = _vote(level_image, field, sy, sx, uniform, radius)
            else:
                current = _copy(level_image, field, sy, sx)
        if level < params.plain_levels and level < levels:
            previous = field
            if level == 1:
                coarse = current[:colours]
            continue  # fine levels inherit the field: the copy happens at full resolution below
        basis = _patch_basis(level_image, field.valid, params.patch, params.features, generator)
        source = _descriptors(level_image, basis)
        if sy is None:
            # The coarsest level is small: match every target exhaustively, as one matrix product.
            target = _descriptors_at(current, basis, field.ty, field.tx)
            sy, sx = _exhaustive(target, source, field)
            dist = torch.zeros(sy.shape, device=sy.device)
        rounds = params.em_coarse if level == levels else params.em_levels if level > 0 else params.em_fine
        for em in range(rounds):
            target = _descriptors_at(current, basis, field.ty, field.tx)
            search = params.search_rounds * (params.first_search if level == levels and em == 0 else 1)
            sy, sx, dist = _search(field, target, source, sy, sx, search,
                                   params.random_candidates, params.coherence, generator)
            if level > 0:
                current = _vote(level_image, field, sy, sx, dist, radius, params.coarse_sharpness)
            else:
                current = _copy(level_image, field, sy, sx)
        previous = field
        if level == 1:
            coarse = current[:colours]
    if levels == 0 or params.detail_sigma <= 0:  # a small hole, or no layers: real pixels, voted
        return _vote(image[:colours], field, sy, sx, dist, params.fine_vote, params.fine_sharpness)
    return recombine(image[:colours], hole, coarse, ~holes[1], field, sy, sx, dist, params.detail_sigma,
                     params.fine_vote, params.fine_sharpness)


def _upsample_field(coarse: _Field, fine: _Field, sy, sx, dist, generator):
    """Double a coarse field: each fine target takes its coarse pixel's offset (and distance)."""
    oy, ox = coarse.offset_grids(sy, sx)
    dist_grid = torch.zeros(coarse.height, coarse.width, device=sy.device)
    if dist is not None:
        dist_grid[coarse.ty, coarse.tx] = dist.clamp_max(1e30)
    cy, cx = fine.ty // 2, fine.tx // 2
    sy = (fine.ty + 2 * oy[cy, cx]).clamp(0, fine.height - 1)
    sx = (fine.tx + 2 * ox[cy, cx]).clamp(0, fine.width - 1)
    lost = ~fine.valid[sy, sx]
    if bool(lost.any()):  # fine targets whose coarse pixel had no match: start them anywhere
        ry, rx = fine.random_sources(int(lost.sum()), generator)
        sy[lost], sx[lost] = ry, rx
    return sy, sx, dist_grid[cy, cx]


class Exemplar:
    name = "exemplar"
    version = "1"  # bump when the output bytes change: finished work is keyed by it
    copies_grain = True  # the fill is the photo's own pixels, grain included (see Regrain)

    def __init__(self, config):
        self.params = getattr(config, "exemplar", None) or ExemplarConfig()
        self.device = _device(config)

    def _margin(self, mask: np.ndarray) -> int:
        extents = [max(r.stop - r.start, c.stop - c.start) for r, c in mask_components(mask, 0)]
        margin = int(self.params.margin_ratio * max(extents, default=0))
        return min(self.params.max_margin, max(self.params.min_margin, margin))

    def __call__(self, image: np.ndarray, mask: np.ndarray, context) -> np.ndarray:
        out = image.copy()
        if not mask.any():
            return out
        generator = torch.Generator().manual_seed(int(context.seed) & 0x7FFF_FFFF_FFFF_FFFF)
        for rows, cols in mask_components(mask, self._margin(mask)):
            crop = image[rows, cols]
            pixels = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device, torch.float32)
            pixels = pixels[None] if crop.ndim == 2 else pixels.permute(2, 0, 1)
            hole = torch.from_numpy(np.ascontiguousarray(mask[rows, cols])).to(self.device)
            filled = fill_crop(pixels, hole, self.params, generator)
            filled = filled[0] if crop.ndim == 2 else filled.permute(1, 2, 0)
            out[rows, cols] = filled.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return out
