"""The one stage contract, its registry, and the import graph that keeps configs free of torch."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as photos

from tasks.clean import EditContext, composite
from tasks.config import Config
from tasks.registry import STAGES, get_stage, names
from tasks.settings import BLUR_ENGINE, CLARIFIERS, DETECTORS, REMOVAL_ENGINES
from tasks.stages import DetectStage, EditStage, Stage

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_every_stage_declares_its_kind_name_and_version():
    for (kind, name), stage in STAGES.items():
        assert issubclass(stage, Stage)
        assert stage.kind == kind in ("clean", "clarify", "detect") and stage.name == name
        assert isinstance(stage.version, str) and stage.version
        assert isinstance(stage.copies_grain, bool)
        assert issubclass(stage, DetectStage if kind == "detect" else EditStage)
        assert "from_config" in vars(stage), f"{stage.__name__} says how it is built from its config section"
    # Only the engines whose fill is copied or generated pixels say that it carries grain.
    assert {name for (kind, name), stage in STAGES.items() if stage.copies_grain} == {"exemplar", "lama"}


def test_the_names_a_config_may_choose_are_the_registrys():
    assert names("clean") == sorted((*REMOVAL_ENGINES, BLUR_ENGINE))
    assert names("clarify") == sorted(CLARIFIERS) == sorted(typing.get_args(Config.model_fields["clarify"].annotation))
    assert names("detect") == sorted(DETECTORS)


def test_blur_is_a_clean_stage_but_not_a_removal_engine():
    config = Config()
    blur = get_stage("clean", BLUR_ENGINE, config)
    assert blur is get_stage("clean", "blur", config)
    with pytest.raises(ValueError, match="unknown engine 'blur'"):
        Config(engines={"object": BLUR_ENGINE})


def _items(config):
    items = []
    for k, image in enumerate([photos.coffee(), photos.camera(), photos.chelsea()]):
        mask = np.zeros(image.shape[:2], bool)
        mask[150:190, 200:260] = True
        items.append((image, mask, EditContext(f"img{k}", "object", "remove", k, config)))
    return items


@pytest.mark.parametrize("kind, name", [("clean", "telea"), ("clean", "text"), ("clean", "blur"),
                                        ("clean", "exemplar"), ("clarify", "regrain"), ("clarify", "none")])
def test_run_many_gives_each_image_what_a_call_gives_it(kind, name):
    """The default `run_many` loops over `__call__`; the batching ones keep each image's bytes on
    the CPU. `in_place` writes into the given images and returns them."""
    config = Config(device="cpu", exemplar={"em_coarse": 1, "em_levels": 1})  # a quick exemplar
    stage = get_stage(kind, name, config)
    items = _items(config)
    alone = [stage(*item) for item in items]
    for out, own in zip(stage.run_many(items), alone):
        assert np.array_equal(out, own)
    copies = [(image.copy(), mask, context) for image, mask, context in items]
    written = stage.run_many(copies, in_place=True)
    for (image, _, _), out, own in zip(copies, written, alone):
        assert out is image and np.array_equal(image, own)
    assert not stage.shares_batches  # on the CPU nothing is worth holding a group together for


def test_the_default_run_many_of_a_detector_loops():
    class Brightest(DetectStage):
        name, version = "brightest", "1"

        def __call__(self, image):
            return image.max(axis=-1) > 250

    detector = Brightest()
    images = [photos.coffee(), photos.astronaut()]
    for mask, image in zip(detector.run_many(images), images):
        assert np.array_equal(mask, detector(image)) and np.array_equal(detector.regions(image), mask)


def test_stages_are_built_from_their_own_section():
    from tasks.clarify.regrain import Regrain
    from tasks.clean.telea import Telea
    from tasks.settings import RegrainConfig, TeleaConfig

    assert Telea(TeleaConfig(radius=3)).radius == 3
    assert Telea.from_config(Config(telea={"radius": 3})).radius == 3
    regrain = Regrain(RegrainConfig(block=16), CPU, cpu_batch=4)
    assert regrain.block == 16 and regrain.shares_batches
    assert not Regrain.from_config(Config(device="cpu")).shares_batches


def test_copied_grain_reaches_the_clarifier_through_the_context():
    """Regrain leaves a fill from an engine that copies grain alone when its noise is the photo's;
    it learns that from `context.fill_copies_grain`, not from the engine's name."""
    import cv2

    truth = photos.gravel()
    mask = np.zeros(truth.shape[:2], np.uint8)
    cv2.ellipse(mask, (256, 256), (60, 45), 0, 0, 360, 1, -1)
    mask = mask > 0
    pixels = truth.astype(np.float64)
    fill = np.clip(cv2.GaussianBlur(pixels, (0, 0), 3.0) + pixels - cv2.GaussianBlur(pixels, (0, 0), 1.0), 0, 255)
    fill = np.where(mask, fill.round().astype(np.uint8), truth)
    config = Config(device="cpu")
    regrain = get_stage("clarify", "regrain", config)
    kept = regrain(fill, mask, EditContext("g", "object", "remove", 1, config, fill_copies_grain=True))
    grained = regrain(fill, mask, EditContext("g", "object", "remove", 1, config, fill_copies_grain=False))
    assert np.array_equal(composite(fill, kept, mask), fill)
    assert not np.array_equal(composite(fill, grained, mask), fill)


def test_a_copied_fill_busier_than_the_photo_is_brought_down():
    """Copied grain is kept only up to the photo's level: a fill copied from busier parts of the
    photo (twice the detail of what the hole hid) comes back within the good band of the truth."""
    import cv2

    from tasks.probes import laplacian_std, luminance

    truth = photos.gravel()
    mask = np.zeros(truth.shape[:2], np.uint8)
    cv2.ellipse(mask, (256, 256), (60, 45), 0, 0, 360, 1, -1)
    mask = mask > 0
    pixels = truth.astype(np.float64)
    base = cv2.GaussianBlur(pixels, (0, 0), 3.0)
    fill = np.where(mask, np.clip(base + 2.0 * (pixels - base), 0, 255).round().astype(np.uint8), truth)
    config = Config(device="cpu")
    regrain = get_stage("clarify", "regrain", config)
    out = composite(fill, regrain(fill, mask, EditContext("g", "object", "remove", 1, config, fill_copies_grain=True)), mask)
    hf_ratio = lambda image: laplacian_std(luminance(image), mask) / laplacian_std(luminance(truth), mask)
    assert hf_ratio(fill) > 1.6
    assert 0.75 <= hf_ratio(out) <= 1.33


def test_loading_a_yaml_config_does_not_import_torch(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("engines: {object: telea}\nexemplar: {patch: 5}\ndetect: {text: {scales: [1.0, 2.0]}}\n")
    code = ("import sys; from tasks.config import load_config; config = load_config(sys.argv[1]); "
            "config.digest(); assert config.exemplar.patch == 5; "
            "heavy = sorted(m for m in ('torch', 'cv2', 'tasks.registry', 'tasks.clean') if m in sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=ROOT)


def _project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("tasks", "flows", "data_contracts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules `module` imports anywhere: at its top, inside a function (a lazy import
    closes a cycle too, only later) or for type checking (the two modules still know each other);
    each with the packages above it, which load first."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    edges = {".".join(name.split(".")[:k]) for name in found for k in range(1, name.count(".") + 2)}
    return edges & known - {module}


def test_no_import_cycles_among_the_projects_modules():
    """(Before the stage contract, tasks.config and tasks.clean imported each other.)"""
    modules = _project_modules()
    known = set(modules)
    graph = {name: _imports(path, name, known) for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name, path):
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = [*path[path.index(other):], other] if other in path else [name, other]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if other not in state:
                visit(other, [*path, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
