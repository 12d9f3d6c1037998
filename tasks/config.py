"""The one configuration object of a run: typed, validated, loaded from YAML, passed down.

Every knob that changes output pixels is part of `Config`, so the config's hash (recorded in
`release.json`) says exactly how a release was made.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator

from tasks.device import pick_device
from tasks.settings import (
    REMOVAL_ENGINES,
    BlurConfig,
    DetectConfig,
    ExemplarConfig,
    LamaConfig,
    RegrainConfig,
    SrConfig,
    TeleaConfig,
    TextConfig,
    _Strict,
)


class EngineChoice(_Strict):
    """Which removal engine handles each `removal` class of the manifest."""

    object: str = "exemplar"
    text: str = "text"


class InputConfig(_Strict):
    """What a manifest row may read. Uploaded manifests are untrusted: by default a row reaches only
    files under the manifest's own folder or bucket prefix."""

    allow: tuple[str, ...] = Field((), description="More roots rows may read: absolute folders or URL prefixes "
                                   "(`/mnt/photos`, `s3://bucket/photos`, `https://cdn.example.com/img`).")
    max_bytes: int = Field(256 * 2**20, ge=1, description="Largest image or mask file a row may read, in bytes.")

    @field_validator("allow")
    @classmethod
    def _absolute(cls, allow: tuple[str, ...]) -> tuple[str, ...]:
        for entry in allow:
            if "://" not in entry and not entry.startswith("/"):
                raise ValueError(f"inputs.allow: {entry!r} must be an absolute folder or a URL prefix")
        return allow


class OutputConfig(_Strict):
    jpeg_quality: int = Field(95, ge=50, le=100)
    webp_quality: int = Field(95, ge=50, le=100)
    shards: Literal["none", "webdataset"] = Field(
        "none", description="webdataset: the published rows also as tar shards under webdataset/ (tasks/export.py).")
    shard_max_rows: int = Field(10_000, ge=1, description="Rows per WebDataset shard at most.")
    shard_max_bytes: int = Field(256 * 2**20, ge=10240, description="Bytes per WebDataset shard file at most; a row "
                                 "too large for that gets a shard of its own.")


# Settings that only change how published rows are packaged, never a row's pixels or record.
PACKAGING_FIELDS = {"shards", "shard_max_rows", "shard_max_bytes"}


class SuiteOverride(_Strict):
    """Change the kwargs of matching expectations of one suite, e.g. a deployment's own band."""

    suite: str
    expectation: str
    column: str | None = None
    kwargs: dict


class GateConfig(_Strict):
    max_quarantine_fraction: float = Field(0.2, ge=0, le=1, description="A larger share of quarantined rows fails the release.")
    suites_dir: str | None = Field(None, description="Folder of suite JSON files replacing data_contracts/suites/.")
    overrides: list[SuiteOverride] = Field(default_factory=list)
    retry: bool = Field(True, description="Try other candidates for an edit the image suite refuses before it is "
                        "quarantined (false: the configured engine's edit only).")


class Config(_Strict):
    partition_size: int = Field(64, ge=1, description="Rows per partition when the manifest has no `partition` column.")
    workers: int = Field(0, ge=0, description="Partitions processed at once; 0 = one per CPU core.")
    batch_images: int = Field(
        0, ge=0, le=256, description="Rows of a partition handled as one group: on CUDA the exemplar "
        "and lama engines fill the group's crops in batches, and regrain re-grains them in batches. Memory holds this many "
        "photos per partition task (on CUDA, each with its cleaned copy). 0 = 16 where torch runs on CUDA (the "
        "batches keep the GPU busy), 4 on the CPU.")
    max_pixels: int = Field(100_000_000, ge=1, description="Images above this many pixels are quarantined (decompression bombs).")
    max_mask_fraction: float = Field(0.9, gt=0, le=1,
                                     description="A mask covering more of the image leaves nothing to fill from.")
    inputs: InputConfig = InputConfig()
    engines: EngineChoice = EngineChoice()
    exemplar: ExemplarConfig = ExemplarConfig()
    telea: TeleaConfig = TeleaConfig()
    lama: LamaConfig = LamaConfig()
    blur: BlurConfig = BlurConfig()
    steps: tuple[Literal["clean", "clarify"], ...] = ("clean", "clarify")
    clarify: Literal["none", "regrain", "sr"] = "regrain"
    regrain: RegrainConfig = RegrainConfig()
    sr: SrConfig = SrConfig()
    text: TextConfig = TextConfig()
    detect: DetectConfig = DetectConfig()
    output: OutputConfig = OutputConfig()
    gate: GateConfig = GateConfig()
    report_worst: int = Field(6, ge=0, description="Images per metric shown in the HTML report's worst lists.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(
        1, ge=1, description="CPU threads torch (and onnxruntime's text detector) may use inside one "
        "partition task. Partitions give the parallelism; with 1, outputs are the same bytes on every machine "
        "(a parallel reduction's order depends on the thread count).")

    @field_validator("engines")
    @classmethod
    def _engines_exist(cls, engines: EngineChoice) -> EngineChoice:
        for removal, name in engines.model_dump().items():
            if name not in REMOVAL_ENGINES:
                raise ValueError(f"engines.{removal}: unknown engine {name!r}; available: {sorted(REMOVAL_ENGINES)}")
        return engines

    @field_validator("steps")
    @classmethod
    def _remove_before_enhance(cls, steps: tuple[str, ...]) -> tuple[str, ...]:
        if "clarify" in steps and ("clean" not in steps or steps.index("clarify") < steps.index("clean")):
            raise ValueError(
                "steps: clarify must come after clean. Enhancing first would sharpen the very object "
                "or text being removed and teach the fill its edges; use steps: [clean, clarify]"
            )
        if len(set(steps)) != len(steps) or "clean" not in steps:
            raise ValueError("steps: list clean once, optionally followed by clarify")
        return steps

    def rows_per_batch(self, device_type: str | None = None) -> int:
        """`batch_images`, with 0 resolved for `device_type` (default: the device torch runs on)."""
        if self.batch_images:
            return self.batch_images
        return 16 if (device_type or pick_device(self.device).type) == "cuda" else 4

    def digest(self) -> str:
        """A stable hash of every setting, for provenance."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def pixel_digest(self) -> str:
        """A hash of the settings that can change a row's output or record: changing the gate,
        the partition size or the worker count reuses finished work; changing an engine does not.
        (The image suites, which pick the candidate a refused edit is written with, are keyed apart
        by the partition's content key.)"""
        ignored = {"gate", "partition_size", "workers", "report_worst", "torch_threads", "batch_images", "inputs"}
        relevant = self.model_dump(mode="json", exclude={**dict.fromkeys(ignored, True), "output": PACKAGING_FIELDS})
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Read a YAML config file (optional), apply `overrides`, validate."""
    data: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a YAML mapping, got {type(loaded).__name__}")
        data = loaded or {}
    if overrides:
        data = {**data, **overrides}
    return Config.model_validate(data)
