"""`lama`: learned object removal with LaMa weights the user provides, as TorchScript.

R. Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022.

The contract is the one of `big-lama.pt` as IOPaint loads it: a TorchScript module called as
`model(image, mask)`, with `image` (N,3,H,W) float32 RGB in [0, 1], `mask` (N,1,H,W) float32 in
{0, 1} (1 = fill), H and W multiples of 8; it returns (N,3,H,W) in [0, 1]. Any module keeping that
contract works. The file comes from `lama.weights_uri` (any fsspec URL), is checked against
`lama.sha256` and loads once per worker. A TorchScript file is a program, not only numbers: pin it.

Each mask component is filled on a crop with `lama.margin` of context, at full resolution
(IOPaint's "Crop" strategy; nothing is downscaled), mirrored at its bottom and right up to a
multiple of 8 (numpy's "symmetric", as IOPaint pads). Crops of one padded size go through the
model together, `lama.batch` at a time, across the images of a partition too (`run_many`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from tasks.device import pick_device
from tasks.masks import mask_components
from tasks.settings import LamaConfig
from tasks.stages import EditContext, EditStage, write_back
from tasks.weights import WeightsError, read_verified

MULTIPLE = 8  # the LaMa generator halves the resolution three times


def pad_to_multiple(array: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """`array` (H,W[,C]) mirrored at its bottom and right up to sides that are multiples of `multiple`."""
    height, width = array.shape[:2]
    pad = [(0, -height % multiple), (0, -width % multiple)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, pad, mode="symmetric")


@dataclass(frozen=True)
class _Crop:
    item: int  # which of `run_many`'s items
    rows: slice
    cols: slice

    def padded_shape(self) -> tuple[int, int]:
        height, width = self.rows.stop - self.rows.start, self.cols.stop - self.cols.start
        return height + -height % MULTIPLE, width + -width % MULTIPLE


class Lama(EditStage):
    kind = "clean"
    name = "lama"
    version = "1"  # bump when the output bytes change: finished work is keyed by it (and the weights' digest)
    copies_grain = True  # a generative fill paints texture, grain included (see Regrain)
    shares_batches = True  # crops of one padded size batch across images, on any device (`lama.batch`)

    def __init__(self, settings: LamaConfig, device: torch.device):
        if not settings.weights_uri:
            raise WeightsError(
                "clean: lama needs lama.weights_uri in the config: the fsspec URL of a LaMa TorchScript file "
                "such as IOPaint's big-lama.pt, with lama.sha256 to pin it"
            )
        self.margin, self.batch = settings.margin, settings.batch
        self.device = device
        data, digest = read_verified(settings.weights_uri, settings.sha256, what="lama weights")
        # Finished work is keyed by the weights' bytes too, even when the config names no sha256.
        self.version = f"{Lama.version}:{digest}"
        try:
            model = torch.jit.load(io.BytesIO(data), map_location=self.device)
        except RuntimeError as exc:
            reason = str(exc).strip().split(". ")[0] or type(exc).__name__  # torch appends a page of advice
            raise WeightsError(
                f"lama weights {settings.weights_uri}: not a TorchScript module ({reason}); lama loads a "
                "TorchScript export such as big-lama.pt, not a training checkpoint or a state dict"
            ) from None
        self.model = model.eval()

    @classmethod
    def from_config(cls, config) -> Lama:
        return cls(config.lama, pick_device(config.device))

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray:
        return self.run_many([(image, mask, context)])[0]

    def run_many(self, items: list[tuple[np.ndarray, np.ndarray, EditContext]], in_place: bool = False) -> list[np.ndarray]:
        """`__call__` over several `(image, mask, context)` of one partition, crops batched across them
        (`in_place`: see `tasks.stages`).

        Each output is the same bytes as the image's own `__call__` on the CPU; on CUDA, kernels
        may pick other algorithms for another batch size, so a value may move by one level.
        """
        outputs = [image.copy() for image, _, _ in items]
        by_shape: dict[tuple[int, int], list[_Crop]] = {}
        for index, (_, mask, _) in enumerate(items):
            for rows, cols in mask_components(mask, self.margin):
                crop = _Crop(index, rows, cols)
                by_shape.setdefault(crop.padded_shape(), []).append(crop)
        for crops in by_shape.values():
            for start in range(0, len(crops), self.batch):
                chunk = crops[start : start + self.batch]
                fills = self._fill([items[c.item][0][c.rows, c.cols] for c in chunk],
                                   [items[c.item][1][c.rows, c.cols] for c in chunk])
                for crop, fill in zip(chunk, fills):
                    outputs[crop.item][crop.rows, crop.cols] = fill
        return write_back(items, outputs) if in_place else outputs

    def _fill(self, crops: list[np.ndarray], holes: list[np.ndarray]) -> list[np.ndarray]:
        """The model's fill of crops (h,w[,3] uint8) sharing one padded shape, each at its own size."""
        images = np.stack([pad_to_multiple(np.repeat(c[..., None], 3, axis=2) if c.ndim == 2 else c) for c in crops])
        masks = np.stack([pad_to_multiple(h) for h in holes])
        with torch.inference_mode():
            image = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().div(255)
            mask = torch.from_numpy(masks).to(self.device)[:, None].float()
            # The removed object never reaches the model, whatever the module does with its input.
            image = image * (1 - mask)
            # Unoptimised execution (thread-local): the profiling executor would re-specialise for
            # every new crop size and may fuse kernels from the second call on, changing the bytes.
            with torch.jit.optimized_execution(False):
                result = self.model(image, mask)
            if result.shape != image.shape:
                raise RuntimeError(f"lama model returned {tuple(result.shape)} for input {tuple(image.shape)}: "
                                   "not the LaMa contract (N,3,H,W) -> (N,3,H,W)")
            result = result.float().clamp(0, 1).mul(255)
            fills = []
            for plane, crop in zip(result, crops):
                plane = plane[:, : crop.shape[0], : crop.shape[1]]
                plane = plane.mean(0) if crop.ndim == 2 else plane.permute(1, 2, 0)
                fills.append(plane.round().to(torch.uint8).cpu().numpy())
        return fills
