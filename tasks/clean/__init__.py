"""Clean: the engines that change pixels inside the mask, behind one small contract.

An engine is a class with a `name` and `__call__(image, mask, context) -> image`:

- `image`: HxWx3 (RGB) or HxW (grey) uint8, upright, full resolution;
- `mask`: HxW bool, True = edit;
- returns an array of the same shape and dtype.

Engines may change pixels outside the mask (a crop-based method often does); the caller
composites the result inside the mask only, so the outside stays bit-identical whatever an engine
does. Instances are built once per worker process by `get_engine` (models load once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tasks.clean.blur import MosaicBlur
from tasks.clean.exemplar import Exemplar
from tasks.clean.lama import Lama
from tasks.clean.telea import Telea
from tasks.clean.text import TextRemover
from tasks.workers import worker_instance

if TYPE_CHECKING:
    from tasks.config import Config


@dataclass(frozen=True)
class EditContext:
    """What an engine may know about the row besides its pixels."""

    image_id: str
    removal: str  # "object" | "text"
    action: str  # "remove" | "blur"
    seed: int  # derived from image_id, so random searches repeat exactly on a rerun
    config: "Config"
    strokes_refined: bool = False  # text rows: the Find step already cut the mask to the letters
    engine: str = ""  # the Clean engine that fills the row (Clarify treats copied grain apart)


class Engine(Protocol):
    name: str
    # Optional `copies_grain = True`: the fill carries grain of its own (copied or generated pixels,
    # not diffusion), so Clarify only re-grains where that grain fell short of the photo's noise.

    def __call__(self, image: np.ndarray, mask: np.ndarray, context: EditContext) -> np.ndarray: ...


# Removal engines, chosen per `removal` class in the config.
ENGINES: dict[str, type] = {
    Exemplar.name: Exemplar, Lama.name: Lama, Telea.name: Telea, TextRemover.name: TextRemover,
}
# The privacy action; not a removal engine.
BLUR = MosaicBlur

def get_engine(name: str, config: "Config") -> Engine:
    """The worker-wide instance of engine `name` for this config (built on first use)."""
    return worker_instance(BLUR if name == BLUR.name else ENGINES[name], config)


def composite(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`edited` inside `mask`, `original` everywhere else, bit for bit."""
    if edited.shape != original.shape or edited.dtype != original.dtype:
        raise ValueError(f"engine returned {edited.dtype} {edited.shape}, expected {original.dtype} {original.shape}")
    out = original.copy()
    # Copy the mask's pixels by their flat index: a full-frame np.where costs 30 ms on 4 MP, this 10.
    index = np.flatnonzero(mask)
    pixels = out.reshape(mask.size, -1)
    pixels[index] = edited.reshape(pixels.shape)[index]
    return out
