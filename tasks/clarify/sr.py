"""`sr`: a learned restoration / super-resolution model as the clarifier, at scale 1.0 overall.

Any architecture that spandrel (chaiNNer's model loader) recognises from a state dict: ESRGAN,
Real-ESRGAN compact, SwinIR, SCUNet, DnCNN… The weights come from a URI in the config (any
fsspec URL), are checked against their sha256, and load once per worker: safetensors directly,
`.pth`/`.pt` only through `torch.load(weights_only=True)` (no pickled code runs).

Per mask component, the model runs on a crop with a margin, in overlapping tiles blended with a
linear ramp; an upscaling model's output is brought back to the crop's size with area averaging
(so the net effect is restoration at scale 1.0), and the result is blended inside the feathered
mask only. Needs the optional extra: `pip install clean-clarify[sr]`.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

from tasks.device import pick_device
from tasks.masks import feather_weight, mask_components
from tasks.settings import SrConfig
from tasks.stages import EditContext, EditStage
from tasks.weights import WeightsError, read_verified


def load_state_dict(uri: str, sha256: str | None, with_digest: bool = False):
    data, digest = read_verified(uri, sha256, what="sr weights")
    name = uri.lower()
    if name.endswith(".safetensors"):
        from safetensors.torch import load as load_safetensors

        state = load_safetensors(data)
        return (state, digest) if with_digest else state
    if name.endswith((".pth", ".pt", ".ckpt", ".bin")):
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        for key in ("params_ema", "params", "state_dict", "model"):  # common training wrappers
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        return (state, digest) if with_digest else state
    raise WeightsError(f"sr weights {uri}: use .safetensors (preferred) or .pth/.pt")


def _ramp(length: int, overlap: int, device) -> torch.Tensor:
    """1-D blending window: rises over `overlap` samples at each end, flat in between."""
    window = torch.ones(length, device=device)
    if overlap > 0 and length > 2 * overlap:
        rise = torch.linspace(0, 1, overlap + 2, device=device)[1:-1]
        window[:overlap], window[-overlap:] = rise, rise.flip(0)
    return window


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = [*list(range(0, size - tile, step)), size - tile]
    return sorted(set(starts))


@torch.inference_mode()
def tiled_forward(model, x: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """Run `model` on (1, C, H, W) in overlapping tiles; returns (1, C, H*scale, W*scale)."""
    _, channels, height, width = x.shape
    out = torch.zeros((1, channels, height * scale, width * scale), device=x.device)
    weight = torch.zeros((1, 1, height * scale, width * scale), device=x.device)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            patch = x[:, :, top : top + tile, left : left + tile]
            ph, pw = patch.shape[-2:]
            pred = model(patch)
            window = torch.outer(_ramp(ph * scale, overlap * scale, x.device), _ramp(pw * scale, overlap * scale, x.device))
            out[:, :, top * scale : (top + ph) * scale, left * scale : (left + pw) * scale] += pred * window
            weight[:, :, top * scale : (top + ph) * scale, left * scale : (left + pw) * scale] += window
    return out / weight.clamp(min=1e-6)


class LearnedEnhancer(EditStage):
    kind = "clarify"
    name = "sr"
    version = "1"  # bump when the output bytes change: finished work is keyed by it (and the weights' digest)

    def __init__(self, settings: SrConfig, device: torch.device):
        if not settings.weights_uri:
            raise WeightsError("clarify: sr needs sr.weights_uri (a spandrel-loadable model file) in the config")
        try:
            from spandrel import ModelLoader
        except ImportError as exc:
            raise WeightsError("clarify: sr needs the optional extra: pip install 'clean-clarify[sr]'") from exc
        self.settings = settings
        self.device = device
        state, digest = load_state_dict(settings.weights_uri, settings.sha256, with_digest=True)
        # Finished work is keyed by the weights' bytes too, even when the config names no sha256.
        self.version = f"1:{digest}"
        descriptor = ModelLoader(device=self.device).load_from_state_dict(state)
        descriptor.eval()
        self.model = descriptor
        self.scale = int(descriptor.scale)
        self.channels = int(descriptor.input_channels)

    @classmethod
    def from_config(cls, config) -> LearnedEnhancer:
        return cls(config.sr, pick_device(config.device))

    def enhance(self, crop: np.ndarray) -> np.ndarray:
        """The model's output for a uint8 crop, back at the crop's own size, as float32 0..255."""
        grey = crop.ndim == 2
        planes = np.repeat(crop[..., None], 3, axis=2) if grey and self.channels == 3 else crop
        x = torch.from_numpy(np.ascontiguousarray(planes if planes.ndim == 3 else planes[..., None]))
        x = x.permute(2, 0, 1)[None].float().div(255).to(self.device)
        y = tiled_forward(self.model, x, self.scale, self.settings.tile, self.settings.overlap)
        if self.scale != 1:
            y = F.interpolate(y, size=crop.shape[:2], mode="area")
        y = y[0].clamp(0, 1).mul(255).permute(1, 2, 0).cpu().numpy()
        return y.mean(axis=2) if grey else y

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray:
        out = image.copy()
        for rows, cols in mask_components(mask, self.settings.margin):
            crop = image[rows, cols]
            weight = feather_weight(mask[rows, cols], self.settings.feather)
            weight = weight if crop.ndim == 2 else weight[..., None]
            enhanced = self.enhance(crop)
            out[rows, cols] = np.clip(np.rint(crop + (enhanced - crop) * weight), 0, 255).astype(np.uint8)
        return out
