"""Every stage by (kind, name), in one place, and the worker-wide instance of each.

The contract is `tasks/stages.py`; the names a config may choose are also listed, statically and
without importing any stage, in `tasks/settings.py` (a test checks that both agree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.clarify import PassThrough
from tasks.clarify.regrain import Regrain
from tasks.clarify.sr import LearnedEnhancer
from tasks.clean.blur import MosaicBlur
from tasks.clean.exemplar import Exemplar
from tasks.clean.lama import Lama
from tasks.clean.telea import Telea
from tasks.clean.text import TextRemover
from tasks.detect.faces import FaceDetector
from tasks.detect.text import TextDetector
from tasks.stages import Stage
from tasks.workers import worker_instance

if TYPE_CHECKING:
    from tasks.config import Config

STAGES: dict[tuple[str, str], type[Stage]] = {
    (stage.kind, stage.name): stage
    for stage in (
        Exemplar, Lama, Telea, TextRemover, MosaicBlur,  # clean (blur: the privacy action's engine)
        PassThrough, Regrain, LearnedEnhancer,  # clarify
        TextDetector, FaceDetector,  # detect
    )
}


def names(kind: str) -> list[str]:
    """The names of the stages of `kind`, sorted."""
    return sorted(name for stage_kind, name in STAGES if stage_kind == kind)


def get_stage(kind: str, name: str, config: Config) -> Stage:
    """The worker-wide instance of stage (`kind`, `name`) for this config, built by its
    `from_config` on first use (models load once per worker)."""
    return worker_instance(STAGES[kind, name], config)
