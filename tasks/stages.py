"""The one contract of every stage that looks at pixels: Clean engines, clarifiers, detectors.

A stage is a class that declares, as class attributes,

- `kind`: "clean" (changes pixels inside the mask), "clarify" (restores texture there after
  Clean) or "detect" (finds what to edit);
- `name`: what the config and the manifest call it (`engines.object: exemplar`, `clarify: regrain`,
  `detect: [text]`); (`kind`, `name`) is its key in `tasks.registry.STAGES`;
- `version`: bump it when the output bytes change: finished work is keyed by it (a stage whose
  output depends on a weights file sets it per instance, with the weights' digest);
- `copies_grain` (Clean): the fill carries grain of its own (copied or generated pixels, not
  diffusion), so Clarify only re-grains where that grain fell short of the photo's noise;

and, per instance,

- `shares_batches`: whether `run_many` over several images does better than one call per image
  (their crops share batches, e.g. on CUDA), so that the partition should hold a group of images
  together for it. False by default;
- `from_config(config)`: the stage built from its own section of the run's `Config` (and the
  device), once per worker by `tasks.registry.get_stage`. The constructor takes that section
  itself, so a test builds a stage without a whole `Config`.

Clean and clarify stages (`EditStage`) are called as `stage(image, mask, context) -> image`:

- `image`: HxWx3 (RGB) or HxW (grey) uint8, upright, full resolution;
- `mask`: HxW bool, True = edit;
- `context`: the row's `EditContext`;
- returns an array of the same shape and dtype. A stage may change pixels outside the mask (a
  crop-based method often does); the caller composites the result inside the mask only, so the
  outside stays bit-identical whatever a stage does.

`run_many(items, in_place=False)` is the same over several `(image, mask, context)` of one
partition; by default it calls the stage on each. `in_place=True` writes each result into its
given image (the caller's own copy) instead of a new one, and only once every item is done, so a
call that fails leaves them as they were.

Detectors (`DetectStage`) are called as `stage(image) -> mask` (HxW bool in the image's frame,
True = found), and `regions(image) -> mask` is where they fire before any refinement (the Measure
step asks the text detector whether text is still there, on a crop, with `regions(crop, scale)`);
`lines(image)` is the same labelled one line or object per label (HxW int32, 0 = nothing), so
the text refinement takes stacked lines apart; `run_many(images)` loops by default.

Stages are plain Python: no Prefect, and no torch here (a stage module imports what it needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

if TYPE_CHECKING:
    from tasks.config import Config


@dataclass(frozen=True)
class EditContext:
    """What a clean or clarify stage may know about the row besides its pixels."""

    image_id: str
    removal: str  # "object" | "text"
    action: str  # "remove" | "blur"
    seed: int  # derived from image_id, so random searches repeat exactly on a rerun
    config: Config
    strokes_refined: bool = False  # text rows: the Find step already cut the mask to the letters
    fill_copies_grain: bool = False  # the Clean stage that filled the row copies grain (Clarify treats it apart)


class Stage:
    """What every stage declares; see the module's docstring."""

    kind: ClassVar[str]
    name: ClassVar[str]
    version: str
    copies_grain: ClassVar[bool] = False

    @property
    def shares_batches(self) -> bool:
        return False

    @classmethod
    def from_config(cls, config: Config) -> Stage:
        """The stage built from its own section of `config` (and its device)."""
        raise NotImplementedError(f"{cls.__name__} does not say how it is built from a config")


class EditStage(Stage):
    """A clean or clarify stage: `(image, mask, context) -> image`."""

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray:
        raise NotImplementedError

    def run_many(self, items: list[tuple[np.ndarray, np.ndarray, EditContext]], in_place: bool = False) -> list[np.ndarray]:
        """`__call__` over several `(image, mask, context)`; see the module's docstring for `in_place`."""
        outputs = [self(image, mask, context) for image, mask, context in items]
        return write_back(items, outputs) if in_place else outputs


class BatchesOnDevice:
    """A mixin for stages whose crops of several images share batches on CUDA (exemplar, regrain).

    On the CPU each crop is its own batch unless `cpu_batch` is over 1, which tests use to run the
    CUDA batching there. The class attribute is the default; a constructor given `cpu_batch` sets
    it for that instance (a test raises the class's for a whole partition run)."""

    cpu_batch: int = 1
    device: object  # torch.device, set by the stage's constructor

    def _set_cpu_batch(self, cpu_batch: int | None) -> None:
        if cpu_batch is not None:
            self.cpu_batch = cpu_batch

    @property
    def shares_batches(self) -> bool:
        """Whether holding a group of images together for `run_many` pays: only when their crops
        share batches."""
        return self.device.type == "cuda" or self.cpu_batch > 1

    def batch_size(self, on_device: int) -> int:
        """Crops per batch: `on_device` on CUDA, `cpu_batch` on the CPU."""
        return on_device if self.device.type == "cuda" else self.cpu_batch


class DetectStage(Stage):
    """A detector: `image -> mask` (HxW bool, True = found)."""

    kind = "detect"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def regions(self, image: np.ndarray) -> np.ndarray:
        """Where the detector fires, before any refinement of its mask: by default its mask."""
        return self(image)

    def lines(self, image: np.ndarray) -> np.ndarray:
        """`regions`, one label per thing found (HxW int32, 0 = nothing), so a refinement can take each
        apart from its neighbours: by default the regions' connected components."""
        return cv2.connectedComponents(self.regions(image).astype(np.uint8), connectivity=8)[1]

    def run_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """`__call__` over several images."""
        return [self(image) for image in images]


def write_back(items: list[tuple[np.ndarray, np.ndarray, EditContext]], outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Each output copied into its item's image (once all are computed); the images, returned."""
    for (image, _, _), output in zip(items, outputs):
        if output is not image:
            image[...] = output
    return [image for image, _, _ in items]
