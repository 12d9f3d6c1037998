"""One partition's work: every row through find → clean → clarify → measure → write.

`edit_rows` is the whole path of a group of images and never raises for a row's fault: a row ends
as a published record or as a quarantined one with its reason. `process_partition` streams a
partition's rows `batch_images` at a time (memory bounded by that many photos; a model engine
fills their crops in one batch) and writes the records as one Parquet file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
import traceback
from dataclasses import dataclass, field

import cv2
import numpy as np
import pyarrow as pa
import torch

from data_contracts.manifest import row_problem
from data_contracts.records import RECORD_SCHEMA, STEP_SECONDS
from tasks.cache import content_key, lookup, runtime_versions, store
from tasks.clean import composite
from tasks.clean.telea import on_diffused_base
from tasks.gate import IMAGE_SUITES, load_suite, row_refusals
from tasks.images import decode_photo, encode_photo
from tasks.masks import build_masks, mask_png
from tasks.masks_text import VERSION as TEXT_STROKES_VERSION
from tasks.masks_text import continue_lines, join_lines, refine_text_mask
from tasks.measure import (
    METRICS_VERSION,
    TEXT_CHECK_VERSION,
    mask_fraction,
    measure_edit,
    outside_changed,
    remnant_score,
    significant,
    text_still_detected,
)
from tasks.plan import ROW_INDEX, Job
from tasks.registry import STAGES, get_stage, names
from tasks.settings import BLUR_ENGINE
from tasks.stages import EditContext
from tasks.uris import (
    RowError,
    TransientStorageError,
    join,
    read_bytes,
    read_parquet,
    resolve,
    write_bytes,
    write_parquet,
)
from tasks.workers import worker_instance

log = logging.getLogger(__name__)


def seed_for(image_id: str) -> int:
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little")


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")


def output_name(image_id: str, extension: str) -> str:
    """A safe file name under `images/` for `image_id`, never the same for two ids.

    An id that is already a safe name is used as it is. Any other id is cleaned and suffixed with
    `~` and its hash: `~` is never in a safe name, so a cleaned id cannot meet a verbatim one, and
    two ids that clean alike ("a b", "a/b") differ by hash.
    """
    if _SAFE_NAME.fullmatch(image_id):
        return f"images/{image_id}{extension}"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._-")[:120] or "image"
    return f"images/{safe}~{hashlib.sha256(image_id.encode()).hexdigest()[:16]}{extension}"


@dataclass
class _Edit:
    """A row between Find and Clarify: its pixels, its mask and what is known of it so far."""

    row: dict
    record: dict
    trace: dict
    started: float
    source_bytes: bytes
    mask_bytes: bytes | None
    engine_name: str
    clarify_name: str
    photo: object = None
    mask: np.ndarray | None = None
    region: np.ndarray | None = None  # text: where the text was said to be (drawn mask, boxes, detections)
    context: EditContext | None = None
    is_text: bool = False
    result: dict = field(default_factory=dict)
    cleaned: np.ndarray | None = None  # the row after Clean, composited in the mask
    clarified: bool = False  # `cleaned` was clarified in place by a batch
    remnant_memo: dict = field(default_factory=dict)  # the remnant score's references, kept across candidates


def _lap(clock: float) -> tuple[float, float]:
    """(seconds since `clock`, now): one step's time, and the start of the next."""
    now = time.perf_counter()
    return now - clock, now


def edit_row(row: dict, job: Job) -> dict:
    """Run one manifest row end to end; return its record (published or quarantined)."""
    return edit_rows([row], job)[0]


def edit_rows(rows: list[dict], job: Job) -> list[dict]:
    """Run a group of rows end to end; return their records in order. Never raises for a row's fault.

    Each row is read and its mask found on its own; the Clean step then runs once for the whole
    group per engine that `shares_batches` (exemplar on a GPU, lama), whose `run_many` fills the crops
    of many images in one batch. Where the clarifier batches too (regrain on a GPU), every row is cleaned
    before any is clarified, and Clarify runs once for the group. Measure and Write follow row by
    row. Content already finished by an earlier run (same bytes, same settings, same code) is
    copied from the cache instead of computed: `reused` says which.
    """
    records: list[dict | None] = [None] * len(rows)
    edits: dict[int, _Edit] = {}
    for index, row in enumerate(rows):
        record = {"image_id": row.get("image_id"), ROW_INDEX: row.get(ROW_INDEX), "source_uri": row.get("image_uri"),
                  "reused": False}
        trace = {"stage": "check"}  # where a failure happened, for the quarantine reason
        outcome = _guard(functools.partial(_find, row, job, record, trace), records, index, row, record, trace,
                         time.perf_counter())
        if isinstance(outcome, _Edit):
            edits[index] = outcome
    _clean_together(edits, job)
    # Elsewhere (the CPU) each row is cleaned and clarified in turn: the group never holds a
    # cleaned copy of every photo at once.
    if _clarifying(edits, job):
        for index, edit in list(edits.items()):  # what no batch cleaned, row by row; a failure ends its row
            if _guard(functools.partial(_clean, edit, job), records, index, edit.row, edit.record, edit.trace,
                      edit.started):
                del edits[index]
        _clarify_together(edits, job)
    for index, edit in edits.items():
        _guard(functools.partial(_finish, edit, job), records, index, edit.row, edit.record, edit.trace, edit.started)
    return records


def _guard(step, records: list, index: int, row: dict, record: dict, trace: dict, started: float):
    """Run one row's `step`; a step that returns a record, or fails, ends the row in `records`."""
    try:
        outcome = step()
    except RowError as exc:
        record.update(status="quarantined", reason=f"{trace['stage']}: {exc}")
        outcome = record
    except TransientStorageError:
        raise  # the store's fault, not the row's: the partition task is retried
    except Exception as exc:  # an engine bug must cost one row, not the run
        log.error("row %r failed in %s:\n%s", row.get("image_id"), trace["stage"], traceback.format_exc())
        record.update(status="quarantined", reason=f"{trace['stage']}: internal error {type(exc).__name__}: {exc}")
        outcome = record
    if isinstance(outcome, dict):
        outcome["seconds"] = time.perf_counter() - started
        records[index] = outcome
    return outcome


def _find(row: dict, job: Job, record: dict, trace: dict) -> _Edit | dict:
    """Check, read and find one row: a pending edit, or its finished record when cached."""
    started = time.perf_counter()
    config = job.config
    problem = row_problem(row)
    if problem:
        raise RowError(problem)
    action, removal = row.get("action") or "remove", row.get("removal") or "object"
    record.update(action=action, removal=removal)

    trace["stage"] = "read"
    inputs = config.inputs
    source_uri = resolve(row["image_uri"], job.manifest_root, inputs.allow)
    record["source_uri"] = source_uri
    source_bytes = read_bytes(source_uri, max_bytes=inputs.max_bytes)
    trace["stage"] = "find"
    mask_bytes = (read_bytes(resolve(row["mask_uri"], job.manifest_root, inputs.allow), what="mask",
                             max_bytes=inputs.max_bytes) if row.get("mask_uri") else None)
    engine_name = BLUR_ENGINE if action == "blur" else getattr(config.engines, removal)
    clarify_name = config.clarify if action == "remove" and "clarify" in config.steps else "none"
    key = content_key(row, source_bytes, mask_bytes, config, {
        "clean": f"{engine_name}:{get_stage('clean', engine_name, config).version}",
        "clarify": f"{clarify_name}:{get_stage('clarify', clarify_name, config).version}",
        "find": f"text-strokes:{TEXT_STROKES_VERSION}",
        # Detections decide the mask, and Measure's text check decides `text_detected`.
        "detect": {name: get_stage("detect", name, config).version for name in sorted(set(row.get("detect") or []))
                   if ("detect", name) in STAGES},
        "measure": f"text-check:{TEXT_CHECK_VERSION};metrics:{METRICS_VERSION}",
        "retry": _retry_key(config, action),
    }, runtime_versions(config.device))
    record["content_key"] = key
    cached = lookup(job.cache_uri, key) if job.cache_uri else None
    record["read_seconds"] = time.perf_counter() - started
    if cached is not None:
        trace["stage"] = "write"
        write_started = time.perf_counter()
        relative = output_name(row["image_id"], cached.record["extension"])
        write_bytes(join(job.release_uri, relative), cached.data)
        # Only what this run did is timed: an entry written before timings left the cache has some.
        record.update({k: v for k, v in cached.record.items() if k not in STEP_SECONDS}, output_uri=relative,
                      reused=True, write_seconds=time.perf_counter() - write_started)
        return record
    edit = _Edit(row, record, trace, started, source_bytes, mask_bytes, engine_name, clarify_name)
    _find_pixels(edit, job)
    return edit


def _find_pixels(edit: _Edit, job: Job) -> None:
    """Decode the photo and build the row's mask (given shapes, detectors, stroke refinement)."""
    config, row, trace = job.config, edit.row, edit.trace
    trace["stage"] = "read"
    clock = time.perf_counter()
    photo = decode_photo(edit.source_bytes, config.max_pixels)
    steps = edit.record
    steps["decode_seconds"], clock = _lap(clock)
    trace["stage"] = "find"
    drawn, shapes = build_masks(row, photo.size, lambda uri: edit.mask_bytes, config.max_pixels)
    # A row naming a detector that does not exist is quarantined rather than published with its
    # text or faces still in place.
    missing = [name for name in (row.get("detect") or []) if ("detect", name) not in STAGES]
    if missing:
        raise RowError(f"detector(s) {missing} requested but not available; available: {names('detect')}")
    steps["find_seconds"], clock = _lap(clock)
    is_text = (row.get("removal") or "object") == "text" and (row.get("action") or "remove") == "remove"
    found = np.zeros_like(shapes)
    labelled = []
    for name in row.get("detect") or []:
        detector = get_stage("detect", name, config)
        if is_text:
            # Text rows take where the detectors fire, line by line, and cut it to strokes with the
            # boxes, below.
            labelled.append(detector.lines(photo.colour))
            found |= labelled[-1] > 0
        else:
            found |= detector(photo.colour)
    if row.get("detect"):
        steps["detect_seconds"], clock = _lap(clock)
    coarse = shapes | found
    if is_text and coarse.any():
        # Stroke-accurate: the hole is the letters (and their halo), not the box around them, so
        # the photo between the letters is never re-invented, re-grained or counted as edited. A
        # mask the user drew is never cut: it is the floor of the edit.
        lines = join_lines(labelled) if found.any() else None
        coarse = refine_text_mask(photo.colour, coarse, grow=config.text.grow, margin=config.text.margin, lines=lines)
        if lines is not None:
            # A glyph the detector left out at a line's end (a lone '©') is the text's, and the
            # region the text check and the retries look at takes it too.
            glyphs = continue_lines(photo.colour, coarse, lines, grow=config.text.grow,
                                    gap=config.detect.text.glyph_gap) & ~coarse
            coarse |= glyphs
            found |= glyphs
    mask = drawn | coarse
    edit.region = (drawn | shapes | found) if is_text else None
    fraction = mask_fraction(mask)
    steps["find_seconds"] += _lap(clock)[0]
    if fraction > config.max_mask_fraction:
        raise RowError(
            f"mask covers {fraction:.0%} of the image, over max_mask_fraction {config.max_mask_fraction:.0%}: "
            "nothing would be left to fill from"
        )
    edit.photo, edit.mask, edit.is_text = photo, mask, is_text
    edit.result = {"flags": [], "engine": "none", "clarify": "none", "mask_fraction": fraction}
    edit.context = EditContext(row["image_id"], row.get("removal") or "object", row.get("action") or "remove",
                               seed_for(row["image_id"]), config, strokes_refined=is_text,
                               fill_copies_grain=get_stage("clean", edit.engine_name, config).copies_grain)


def _clean_together(edits: dict[int, _Edit], job: Job) -> None:
    """The Clean step for a group of rows: one `run_many` call per engine that shares batches (its
    crops batch across images), else one call per row. A failed batch is redone row by row, so a
    bad row costs itself, not its neighbours."""
    by_engine: dict[str, list[_Edit]] = {}
    for edit in edits.values():
        if edit.mask.any():
            by_engine.setdefault(edit.engine_name, []).append(edit)
    for engine_name, group in by_engine.items():
        engine = get_stage("clean", engine_name, job.config)
        if len(group) > 1 and engine.shares_batches:
            started = time.perf_counter()
            try:
                outputs = engine.run_many([(e.photo.colour, e.mask, e.context) for e in group])
            except Exception:
                log.warning("batched %s failed; cleaning its %d rows one by one", engine_name, len(group))
            else:
                share = (time.perf_counter() - started) / len(group)
                for k, edit in enumerate(group):
                    edit.cleaned = composite(edit.photo.colour, outputs[k], edit.mask)
                    outputs[k] = None  # the engine's copy goes as soon as the row has its own
                    edit.result["clean_seconds"] = share
        # Row by row (or what the batch did not do); a row's own failure is reported for that row.


def _clean(edit: _Edit, job: Job) -> None:
    """The Clean step of one row that no batch cleaned: `edit.cleaned`, composited in the mask."""
    if edit.cleaned is not None or not edit.mask.any():
        return
    edit.trace["stage"] = "clean"
    started = time.perf_counter()
    cleaned = get_stage("clean", edit.engine_name, job.config)(edit.photo.colour, edit.mask, edit.context)
    edit.cleaned = composite(edit.photo.colour, cleaned, edit.mask)
    edit.result["clean_seconds"] = edit.result.get("clean_seconds", 0.0) + time.perf_counter() - started


def _clarifying(edits: dict[int, _Edit], job: Job) -> dict[str, list[_Edit]]:
    """The rows of the group that a clarifier which shares batches across images will clarify."""
    by_clarifier: dict[str, list[_Edit]] = {}
    for edit in edits.values():
        if edit.mask.any() and edit.clarify_name != "none":
            by_clarifier.setdefault(edit.clarify_name, []).append(edit)
    return {name: group for name, group in by_clarifier.items()
            if len(group) > 1 and get_stage("clarify", name, job.config).shares_batches}


def _clarify_together(edits: dict[int, _Edit], job: Job) -> None:
    """The Clarify step for a group of cleaned rows: one `run_many` call per clarifier that
    shares batches across images, in place on the rows' own cleaned copies (it writes only once
    every crop is done). A failed call is redone row by row by `_finish`."""
    for name, group in _clarifying(edits, job).items():
        started = time.perf_counter()
        try:
            get_stage("clarify", name, job.config).run_many([(e.cleaned, e.mask, e.context) for e in group], in_place=True)
        except Exception:
            log.warning("batched %s failed; clarifying its %d rows one by one", name, len(group))
            continue
        share = (time.perf_counter() - started) / len(group)
        for edit in group:
            edit.clarified = True
            edit.result["clarify_seconds"] = share


def _finish(edit: _Edit, job: Job) -> dict:
    """Clean and clarify what no batch did, measure, retry an edit the image suite refuses, and
    write one row; its published record (the GX gate over all rows decides what stays published)."""
    config, row, trace, result = job.config, edit.row, edit.trace, edit.result
    photo, mask = edit.photo, edit.mask
    final = photo.colour
    _clean(edit, job)
    if not mask.any():
        result["flags"].append("empty_mask")
    else:
        result["engine"] = edit.engine_name
        if edit.clarify_name != "none":
            trace["stage"] = "clarify"
            clarify_started = time.perf_counter()
            result["clarify"] = edit.clarify_name
            clarified = edit.cleaned if edit.clarified else get_stage("clarify", edit.clarify_name, config)(
                edit.cleaned, mask, edit.context)
            final = composite(photo.colour, clarified, mask)
            result["clarify_seconds"] = result.get("clarify_seconds", 0.0) + time.perf_counter() - clarify_started
        else:
            final = edit.cleaned

    trace["stage"] = "measure"
    clock = time.perf_counter()
    _measure(edit, job, final, mask, result)
    result["measure_seconds"], clock = _lap(clock)
    if mask.any():
        final, mask = _retry_refused(edit, job, final)
        result = edit.result
        clock = time.perf_counter()

    trace["stage"] = "write"
    if not mask.any() and photo.orientation == 1:
        data = edit.source_bytes  # nothing to edit and nothing to rotate: publish the file as it came
    else:
        data = encode_photo(photo, final, config.output.jpeg_quality, config.output.webp_quality)
    result["encode_seconds"], clock = _lap(clock)
    relative = output_name(row["image_id"], photo.extension)
    write_bytes(join(job.release_uri, relative), data)
    result.update(status="published", output_uri=relative, sha256=hashlib.sha256(data).hexdigest(),
                  format=photo.format, width=photo.size[0], height=photo.size[1], extension=photo.extension)
    edit.record.update(result)
    if job.cache_uri:
        try:  # the cache only saves work: a row whose file is written is published whatever it says
            store(job.cache_uri, edit.record["content_key"], edit.record, data, mask_png(mask) if mask.any() else None)
        except Exception as exc:
            log.warning("row %r: could not keep its finished work in the cache: %s", row["image_id"], exc)
    edit.record["write_seconds"] = _lap(clock)[0]
    edit.photo = edit.mask = edit.cleaned = edit.region = None  # a group holds its photos only until written
    edit.remnant_memo = {}
    return edit.record


def _measure(edit: _Edit, job: Job, final: np.ndarray, mask: np.ndarray, result: dict) -> None:
    """Measure's metrics of one edit into `result` (the text check and remnant score on text rows)."""
    photo, row = edit.photo, edit.row
    result["outside_changed"] = outside_changed(photo.colour, final, mask)
    result.update(measure_edit(photo.colour, final, mask, row.get("action") or "remove",
                               row.get("removal") or "object").as_record())
    if edit.is_text and mask.any():
        check_started = time.perf_counter()
        # Over the whole region the row marked, not only the pixels changed: letters the refinement
        # left out (a faint caption beside a strut it took for strokes) are text still there.
        result["text_detected"] = text_still_detected(final, mask, get_stage("detect", "text", job.config),
                                                      region=edit.region)
        score = remnant_score(photo.colour, final, edit.region | mask, memo=edit.remnant_memo)
        result["remnant_score"] = _nan_to_none(score)
        result["text_check_seconds"] = result.get("text_check_seconds", 0.0) + time.perf_counter() - check_started


def _nan_to_none(value: float) -> float | None:
    return None if value != value else significant(value)


_SUITES: dict[tuple[str, str], dict] = {}


def _image_suite(config, action: str) -> dict:
    """The image suite that judges rows of `action`, as the gate will load it (overrides applied)."""
    key = (config.digest(), action)
    if key not in _SUITES:
        _SUITES[key] = load_suite(IMAGE_SUITES[action], config.gate.suites_dir, config.gate.overrides)
    return _SUITES[key]


RETRY_VERSION = "2"  # bump when the candidates tried for a refused edit change: finished work is keyed by it


def _retry_key(config, action: str) -> str:
    """What picks the candidate a refused edit is written with: the image suite as loaded (its file,
    `suites_dir` and overrides) and the candidates' list. The gate's other settings (the quarantine
    share, the release suite) change no pixel and stay out of the key."""
    if not config.gate.retry or action not in IMAGE_SUITES:
        return "off"
    suite = json.dumps(_image_suite(config, action), sort_keys=True).encode()
    # The candidates fill with the exemplar whatever engine the row's class names.
    exemplar = STAGES["clean", "exemplar"].version
    return f"{RETRY_VERSION}:exemplar-{exemplar}:{hashlib.sha256(suite).hexdigest()[:16]}"


def _said(name: str, refusals: list[str]) -> str:
    return f"{name}: " + ("passed" if not refusals else "refused by " + ", ".join(refusals))


def _retry_refused(edit: _Edit, job: Job, final: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edit to write: the first one, or, when the image suite refuses it, the first of the other
    candidates (`_candidates`) it passes, measured by the same reference-free metrics; where none
    passes, the one it refuses least (the gate then quarantines it). Records every attempt."""
    suite = _image_suite(job.config, edit.record["action"])
    refusals = row_refusals({**edit.record, **edit.result}, suite)
    attempts = [_said("first", refusals)]
    best = (len(refusals), final, edit.mask, {**edit.result, "candidate": "first"})
    started = time.perf_counter()
    for name, engine, mask in _candidates(edit, job) if refusals and job.config.gate.retry else ():
        edit.trace["stage"] = f"clean ({name} candidate)"
        context = dataclasses.replace(edit.context, fill_copies_grain=engine.copies_grain,
                                      strokes_refined=edit.is_text)
        candidate = composite(edit.photo.colour, engine(edit.photo.colour, mask, context), mask)
        result = {**edit.result, "flags": [], "engine": engine.name, "candidate": name,
                  "mask_fraction": mask_fraction(mask), "text_check_seconds": 0.0}
        if edit.clarify_name != "none":
            clarifier = get_stage("clarify", edit.clarify_name, job.config)
            candidate = composite(edit.photo.colour, clarifier(candidate, mask, context), mask)
        edit.trace["stage"] = f"measure ({name} candidate)"
        _measure(edit, job, candidate, mask, result)
        refusals = row_refusals({**edit.record, **result}, suite)
        attempts.append(_said(name, refusals))
        if len(refusals) < best[0]:
            best = (len(refusals), candidate, mask, result)
        if not refusals:
            break
    _, final, mask, edit.result = best
    edit.result["attempts"] = attempts
    if len(attempts) > 1:
        edit.result["clean_seconds"] = edit.result.get("clean_seconds", 0.0) + time.perf_counter() - started
    return final, mask


def _grown(mask: np.ndarray, radius: int) -> np.ndarray:
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), disk).astype(bool)


def _candidates(edit: _Edit, job: Job):
    """(name, engine, mask) of the edits tried after the first one is refused, in order.

    Text: the strokes grown (letters' halos and edges the refinement left; not where the mask
    already fills its region), then the whole region
    the text was said to be in (box, detection, drawn mask) filled by the texture engine (where
    strokes could not be told from the photo), plain (it continues lines that cross the text) and
    then on a diffused base (no seam on a smooth background); all stay inside that region, so nothing outside
    what the row marked changes. Objects: the texture engine's fill on a base diffused from the
    hole's edge (`on_diffused_base`: a seam on a smooth background is the usual refusal), then with
    another seed, then with twice the context. A candidate whose mask would exceed
    `max_mask_fraction` is not tried."""
    config = job.config
    if edit.record["action"] != "remove":
        return
    exemplar = get_stage("clean", "exemplar", config)
    if edit.is_text:
        region = edit.region | edit.mask
        # Both region candidates start from the same exemplar fill: it is made once.
        region_fill = _Remembered(exemplar)
        grown = _grown(edit.mask, config.text.retry_grow) & region
        # A drawn mask (or a box the refinement took whole) cannot grow inside its region: the same
        # engine on the same mask would make the same refused fill again.
        options = [] if np.array_equal(grown, edit.mask) else [("grown", get_stage("clean", edit.engine_name, config), grown)]
        options += [("region", region_fill, region), ("region-rebased", _Rebased(region_fill), region)]
    else:
        options = [("rebased", _Rebased(exemplar), edit.mask),
                   ("reseeded", _Reseeded(exemplar), edit.mask),
                   ("more-context", worker_instance(_WiderExemplar, config), edit.mask)]
    for name, engine, mask in options:
        if mask_fraction(mask) <= config.max_mask_fraction:
            yield name, engine, mask


class _Rebased:
    """An engine's fill with its low frequencies diffused from the hole's edge (`on_diffused_base`):
    no seam on a smooth background, at the cost of thin lines the fill continued (half their
    contrast), so it is a candidate, not the first try."""

    def __init__(self, engine):
        self.engine, self.name, self.copies_grain = engine, engine.name, engine.copies_grain

    def __call__(self, image, mask, context):
        return on_diffused_base(image, self.engine(image, mask, context), mask)


class _Remembered:
    """An engine that keeps its last fill: called again on the same image, mask and context (a
    candidate built on another's fill), it returns that fill instead of making it again."""

    def __init__(self, engine):
        self.engine, self.name, self.copies_grain = engine, engine.name, engine.copies_grain
        self.last = None

    def __call__(self, image, mask, context):
        if self.last is None or self.last[0] is not image or self.last[1] is not mask or self.last[2] != context:
            self.last = (image, mask, context, self.engine(image, mask, context))
        return self.last[3]


class _Reseeded:
    """An engine run with another seed: its random search starts elsewhere."""

    def __init__(self, engine):
        self.engine, self.name, self.copies_grain = engine, engine.name, engine.copies_grain

    def __call__(self, image, mask, context):
        return self.engine(image, mask, dataclasses.replace(context, seed=(context.seed + 1) & (2**63 - 1)))


class _WiderExemplar:
    """The exemplar engine with twice the context around each hole (margin ratio and cap doubled),
    built once per worker and config by `worker_instance`."""

    @classmethod
    def from_config(cls, config):
        from tasks.clean.exemplar import Exemplar, pick_device

        params = config.exemplar.model_copy(update={"margin_ratio": 2 * config.exemplar.margin_ratio,
                                                    "max_margin": 2 * config.exemplar.max_margin})
        return Exemplar(params, pick_device(config.device))


def load_engines(config) -> None:
    """Build every engine and clarifier `config` names, once per worker. A missing or mismatched
    weights file then fails the run at its start, naming the setting, instead of quarantining
    every row one by one."""
    for name in {config.engines.object, config.engines.text, BLUR_ENGINE}:
        get_stage("clean", name, config)
    if "clarify" in config.steps:
        get_stage("clarify", config.clarify, config)


def process_partition(partition_uri: str, job: Job) -> str:
    """Edit every row of one partition, `batch_images` rows at a time (memory holds that many
    photos); return the URI of its records file."""
    torch.set_num_threads(job.config.torch_threads)
    load_engines(job.config)
    rows = read_parquet(partition_uri).to_pylist()
    size = job.config.rows_per_batch()
    records = [record for start in range(0, len(rows), size) for record in edit_rows(rows[start : start + size], job)]
    name = partition_uri.rstrip("/").rsplit("/", 1)[-1]
    records_uri = join(job.work_uri, "records", name)
    write_parquet(records_uri, pa.Table.from_pylist(records, schema=RECORD_SCHEMA))
    return records_uri
