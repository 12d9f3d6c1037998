"""The settings of each stage (engine, clarifier, detector): one section of `Config` apiece.

Plain pydantic models, no numpy or torch: loading a YAML config imports none of the stages. A
stage is built from its own section by `from_config` (`tasks/stages.py`), never from the whole
`Config`. The stage names a config may choose are listed here too, statically, so validating a
config needs no registry; `tests/test_stages.py` checks them against `tasks.registry.STAGES`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

REMOVAL_ENGINES = ("exemplar", "lama", "telea", "text")  # `engines.object` / `engines.text` choose one
BLUR_ENGINE = "blur"  # the privacy action's engine (not a removal engine)
CLARIFIERS = ("none", "regrain", "sr")  # `clarify` chooses one
DETECTORS = ("text", "faces")  # a row's `detect` list names some


class _Strict(BaseModel):
    # A typo in a YAML key must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExemplarConfig(_Strict):
    """The knobs of the exemplar engine (defaults tuned on the clean benchmark)."""

    patch: int = Field(7, ge=3, le=15, description="Patch side in pixels (odd).")
    features: int = Field(12, ge=2, le=64, description="Principal components a patch is compared by.")
    coarse_size: int = Field(24, ge=4, description="The hole's extent, in pixels, at the coarsest pyramid level "
                             "(unless max_levels stops the pyramid first).")
    coarse_crop: float = Field(4.0, ge=1.5, description="The crop's shorter side, in patches, at the coarsest level.")
    max_levels: int = Field(3, ge=0, le=8, description="Deepest pyramid level (3: an eighth of full resolution): "
                            "coarser, a large hole's layout is matched on texture averaged away.")
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
    texture_weight: float = Field(3.0, ge=0, description="Weight of the texture channels (local mean |gradient|) in "
                                  "patch distances.")
    batch: int = Field(16, ge=1, le=256, description="On CUDA, crops (from all images of a partition batch) filled "
                       "together; on the CPU each crop is filled alone.")


class TeleaConfig(_Strict):
    radius: int = Field(5, ge=1, le=64, description="Telea neighbourhood radius in pixels.")
    margin: int = Field(16, ge=0, description="Context kept around each mask component's crop.")


class LamaConfig(_Strict):
    """The lama engine: LaMa TorchScript weights the user provides (IOPaint's big-lama.pt)."""

    weights_uri: str | None = Field(None, description="fsspec URL of a LaMa TorchScript file, e.g. big-lama.pt.")
    sha256: str | None = Field(None, description="Expected sha256 of the weights file; a mismatch refuses them.")
    margin: int = Field(128, ge=0, description="Context kept around each mask component's crop, at full resolution.")
    batch: int = Field(4, ge=1, description="Crops of one padded size run through the model at once; lower it if "
                       "the GPU runs out of memory on large crops.")

    @field_validator("sha256")
    @classmethod
    def _is_a_sha256(cls, value: str | None) -> str | None:
        # IOPaint publishes an md5 for big-lama.pt: catch it here rather than as a hash mismatch.
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError(f"{value!r} is not a sha256 (64 hex digits): `sha256sum big-lama.pt` prints it")
        return value


class TextConfig(_Strict):
    grow: int = Field(2, ge=0, le=8, description="Pixels added around the found strokes (anti-aliasing, halos).")
    method: Literal["telea", "ns"] = Field("telea", description="Inpainting of the thin stroke holes.")
    radius: int = Field(4, ge=1, le=32, description="Inpainting neighbourhood radius in pixels.")
    margin: int = Field(12, ge=4, description="Context around each mask component used to tell strokes from photo.")
    retry_grow: int = Field(4, ge=1, le=32, description="Pixels a refused edit's mask grows by for the candidates "
                            "tried next (letters' halos, an object's edge).")
    unblend: bool = Field(False, description="Semi-transparent strings (10-70% opacity) are taken off by inverting "
                          "their blend where one opacity and colour explain their pixels (tasks/clean/unblend.py): "
                          "the photo under them comes back; their edges and what does not fit are filled. Off by "
                          "default: on masks much wider than the letters (a box cut to strokes) a wrong fit can pass "
                          "its checks and leave the letters as colour fringes (docs/engines.md).")
    telea_width: float = Field(8.0, ge=0, description="Strokes at most this wide (px, after `grow`) are filled by "
                               "inpainting; wider ones by `wide_fill` from the photo round them (diffusion smears them).")
    wide_fill: Literal["patch", "clone"] = Field("patch", description="How wide strokes over a photo with grain are "
                                                 "filled: 'patch', PatchMatch on the photo round them (its texture at "
                                                 "every scale runs on through the letters); 'clone', the fine detail of "
                                                 "a shifted copy over a membrane pinned to the edge (smooth inside: on a "
                                                 "busy photo it leaves a blob in each letter's shape).")
    smooth_grain: float = Field(3.0, ge=0, description="A wide letter whose photo around it has a median grain "
                                "(|luma - Gaussian 3 px|) under this many grey levels is filled from its edge alone "
                                "(a sky, a wall: a copy would bring in what lies beside it); 0 fills every one by `wide_fill`.")


class BlurConfig(_Strict):
    """Privacy blur: a mosaic of block means, then a Gaussian to hide the block grid.

    The output depends on the block means alone, so detail finer than a block is destroyed, not
    hidden: no deconvolution can bring it back.
    """

    blocks_across: int = Field(6, ge=2, le=64, description="Mosaic blocks across the region's longer side.")
    min_block: int = Field(8, ge=2, description="Smallest block side in pixels.")


class RegrainConfig(_Strict):
    feather: float = Field(3.0, ge=0, description="Pixels over which the new grain fades in from the mask edge.")
    margin: int = Field(32, ge=4, description="Known pixels around each mask component that teach the grain.")
    block: int = Field(32, ge=4, le=256, description="Side of the grain blocks copied from the known pixels.")
    batch: int = Field(16, ge=1, le=256, description="On CUDA, crops (from all images of a partition batch) "
                       "re-grained together, their padded stack under 8 M pixels; the CPU takes one at a time.")


class SrConfig(_Strict):
    """The learned enhancer (`clarify: sr`): weights the user provides, loaded with spandrel."""

    weights_uri: str | None = Field(None, description="fsspec URL of a .safetensors (preferred) or .pth state dict.")
    sha256: str | None = Field(None, description="Expected sha256 of the weights file; a mismatch refuses them.")
    tile: int = Field(256, ge=16, description="Tile side in pixels (model input).")
    overlap: int = Field(16, ge=0, description="Overlap between tiles, blended with a linear ramp.")
    margin: int = Field(32, ge=0, description="Context around each mask component.")
    feather: float = Field(3.0, ge=0)


class TextDetectConfig(_Strict):
    min_side: int = Field(736, ge=64,
                          description="Smaller photos are upscaled to this short side first: small text needs pixels.")
    max_side: int = Field(2016, ge=256, description="Larger photos are downscaled to this long side: the network's "
                          "cost grows with pixels.")
    threshold: float = Field(0.3, gt=0, lt=1, description="Text probability above which a pixel belongs to a text kernel.")
    min_score: float = Field(0.5, gt=0, lt=1, description="Mean probability a kernel needs to count as text.")
    unclip: float = Field(2.0, gt=0, description="DB unclip ratio: kernels grow by area * unclip / perimeter.")
    scales: tuple[Annotated[float, Field(gt=0, le=4)], ...] = Field(
        (1.0,), min_length=1, description="Passes of the network, as multiples of the scale min_side/max_side give; "
        "their regions are joined. (1.0, 2.0) also finds small text over busy textures that one pass misses, for "
        "about 5x the detection time.")
    tile: int = Field(960, ge=0, description="Network pixels per tile side: a photo shrunk to be detected (scale <= "
                      "1) and still larger than this is detected tile by tile instead of whole, neighbours overlapping "
                      "by `tile_overlap`. The network pools over its whole input, so a dark corner's text is lost in a "
                      "bright frame's context; 0 = whole.")
    contrast_sigma: float = Field(8.0, ge=0, description="Also detect on the photo's local contrast (luminance "
                                  "minus its Gaussian of this sigma, px, over its local spread): faint and 30-60% "
                                  "transparent watermarks the photo pass misses (benchmarks/results/detect.md); 0 = off.")
    tile_overlap: int = Field(128, ge=0, description="Network pixels two neighbouring tiles share: a line cut by one "
                              "tile's edge is whole in the next.")
    margin: int = Field(3, ge=0, description="Extra pixels around each grown region, so no anti-aliased edge falls outside.")
    refine: bool = Field(True, description="Cut each region down to its strokes (False: return the line regions). "
                         "Rows with `removal: text` always cut the regions, with their boxes, by the `text` settings.")
    confirm: bool = Field(True, description="Keep a region only if the PP-OCR recogniser reads text in it.")
    min_text_score: float = Field(0.5, ge=0, le=1,
                                  description="Recogniser confidence a region needs (rapidocr's own text_score).")
    min_contrast_text_score: float = Field(0.85, ge=0, le=1, description="Recogniser confidence a region of the "
                                           "local-contrast pass needs: there texture reads as digits ('0000' at 0.73-0.80), "
                                           "faint captions at 0.87-0.98.")
    min_chars: int = Field(2, ge=1, description="Characters a region must read as: lone glyphs are the detector's "
                           "usual false alarms (eyes, fur, lace).")
    look_along: float = Field(3.0, ge=0, description="A second look along each line found, this many line heights "
                              "to either side, at the scale its text needs (`look_height`): the rest of a string the "
                              "frame's pass saw only part of ('$489' beside '000', a '©' before a word); 0 = off.")
    look_height: int = Field(128, ge=16, description="Pixels a line's height is brought to for the second look.")
    glyph_gap: float = Field(1.0, ge=0, description="A glyph the detector does not see as text (a lone '©' before "
                             "a word) is taken with its line when it is of the line's ink colours, on its rows, at "
                             "most this many ink heights from its end and whole within 1.5 of them "
                             "(`masks_text.continue_lines`); 0 = off.")


class FaceDetectConfig(_Strict):
    max_side: int = Field(1024, ge=128,
                          description="Photos are scanned at most this large (the cascade's cost grows with pixels).")
    min_face: int = Field(24, ge=16, description="Smallest face side searched, in scanned pixels.")
    scale_factor: float = Field(1.15, gt=1, le=2, description="Window growth between scales.")
    min_neighbors: int = Field(6, ge=1, description="Overlapping detections needed to accept a face.")
    grow: float = Field(0.15, ge=0, le=1, description="Box grown by this share of its side on each side (hair, ears, chin).")


class DetectConfig(_Strict):
    """The detectors' settings: `Config.detect`."""

    text: TextDetectConfig = TextDetectConfig()
    faces: FaceDetectConfig = FaceDetectConfig()
