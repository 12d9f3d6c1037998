"""The learned enhancer (`clarify: sr`) with a tiny spandrel-detectable model the tests build.

Marked `sr`: they run in the [sr] virtualenv (`make test-sr`), where spandrel is installed.
"""

import hashlib

import cv2
import numpy as np
import pytest
import torch
from skimage import data as photos

from tasks.clean import EditContext
from tasks.config import Config

pytestmark = pytest.mark.sr


def compact_model(scale: int, seed: int = 0) -> dict:
    """A randomly initialised Real-ESRGAN "compact" network (SRVGGNetCompact), kept tiny."""
    from spandrel.architectures.Compact import Compact as SRVGGNetCompact

    torch.manual_seed(seed)
    model = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.fixture
def weights(tmp_path):
    def write(scale=2, suffix=".safetensors"):
        state = compact_model(scale)
        path = tmp_path / f"compact-x{scale}{suffix}"
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(path))
        else:
            torch.save(state, path)
        return str(path), hashlib.sha256(path.read_bytes()).hexdigest()

    return write


def enhancer_config(uri, sha, **sr) -> Config:
    return Config.model_validate({"clarify": "sr", "sr": {"weights_uri": uri, "sha256": sha, **sr}})


def hole(shape):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(mask, (300, 200), (60, 40), 0, 0, 360, 1, -1)
    return mask > 0


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_enhancer_runs_at_scale_one_and_only_inside_the_mask(weights, scale):
    from tasks.registry import get_stage

    uri, sha = weights(scale)
    config = enhancer_config(uri, sha, tile=64, overlap=8)
    enhancer = get_stage("clarify", "sr", config)
    assert enhancer.scale == scale
    image = photos.coffee()
    mask = hole(image.shape)
    out = enhancer(image, mask, EditContext("c", "object", "remove", 0, config))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[~mask] == image[~mask]).all()
    assert np.abs(out[mask].astype(int) - image[mask]).mean() > 1  # a random network changes things


def test_tiles_blend_into_the_same_result_as_one_pass(weights):
    from tasks.clarify.sr import LearnedEnhancer

    uri, sha = weights(2)
    whole = LearnedEnhancer.from_config(enhancer_config(uri, sha, tile=1024))
    tiled = LearnedEnhancer.from_config(enhancer_config(uri, sha, tile=48, overlap=12))
    crop = photos.chelsea()[100:220, 150:330]
    a, b = whole.enhance(crop), tiled.enhance(crop)
    # A 2-conv network sees 5x5 pixels: away from tile borders the results agree, and the ramp
    # blending keeps seams small everywhere.
    assert np.abs(a - b).mean() < 1.0 and np.abs(a - b).max() < 12


def test_pth_loads_through_weights_only(weights):
    from tasks.clarify.sr import LearnedEnhancer

    uri, sha = weights(2, suffix=".pth")
    assert LearnedEnhancer.from_config(enhancer_config(uri, sha)).scale == 2


def test_pickled_code_is_refused(tmp_path):
    import pickle

    from tasks.clarify.sr import load_state_dict

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"weight": Payload()}))
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(str(path), None)


def test_wrong_hash_is_refused(weights):
    from tasks.clarify.sr import LearnedEnhancer, WeightsError

    uri, _ = weights(2)
    with pytest.raises(WeightsError, match="sha256 is"):
        LearnedEnhancer.from_config(enhancer_config(uri, "0" * 64))


def test_sr_in_the_pipeline(weights, make_job, tmp_path):
    from helpers import save

    from tasks.partition import edit_row

    uri, sha = weights(2)
    save(tmp_path / "data" / "img.png", photos.astronaut())
    job = make_job(clarify="sr", sr={"weights_uri": uri, "sha256": sha})
    record = edit_row({"image_id": "a", "_row": 0, "image_uri": "img.png", "boxes": [[300, 300, 360, 380]]}, job)
    assert record["status"] == "published" and record["clarify"] == "sr", record.get("reason")
    assert record["outside_changed"] == 0
