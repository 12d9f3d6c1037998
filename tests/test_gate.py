"""The GX suites shipped in data_contracts/suites/, loaded from JSON and run on record frames."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks.config import Config, SuiteOverride
from tasks.gate import SUITES_DIR, gate_images, gate_release, load_suite, validate


def records(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"image_id": [f"img-{i}" for i in range(n)], "status": ["published"] * n, "action": ["remove"] * n,
            "mask_fraction": [0.03] * n, "outside_changed": [0] * n, "texture_ratio": [1.0] * n,
            "noise_ratio": [1.0] * n, "seam_score": [1.0] * n, "structure_continuity": [0.5] * n,
            "ghost_score": [np.nan] * n, "text_detected": [None] * n, "remnant_score": [np.nan] * n,
            "privacy_residual": [np.nan] * n}
    base.update(columns)
    return pd.DataFrame(base)


def test_suites_are_json_files_with_a_calibration_note():
    for name in ("image_remove", "image_blur", "release"):
        suite = json.loads((SUITES_DIR / f"{name}.json").read_text())
        assert suite["name"] == name and suite["expectations"] and suite["meta"]["calibration"]


def test_rows_outside_the_bands_are_named_with_the_failed_expectations():
    frame = records(texture_ratio=[1.0, 0.1, 1.1, None], seam_score=[1.0, 1.0, 5.0, 1.0], outside_changed=[0, 0, 0, 3])
    (outcome,) = gate_images(frame, Config())
    assert set(outcome.row_failures) == {"img-1", "img-2", "img-3"}
    assert outcome.row_failures["img-1"] == ["expect_column_values_to_be_between(texture_ratio)"]
    assert outcome.row_failures["img-2"] == ["expect_column_values_to_be_between(seam_score)"]
    assert set(outcome.row_failures["img-3"]) == {
        "expect_column_values_to_not_be_null(texture_ratio)", "expect_column_values_to_be_in_set(outside_changed)"}
    assert not outcome.success  # 3 of 4 rows out of band is more than `mostly` tolerates


def test_mostly_tolerates_a_few_outliers_for_the_suite_but_still_names_them():
    frame = records(texture_ratio=[1.0] * 19 + [0.1])
    (outcome,) = gate_images(frame, Config())
    assert outcome.success and list(outcome.row_failures) == ["img-19"]


def test_a_fifth_of_the_rows_refused_on_one_metric_fails_the_suite_and_a_ninth_does_not():
    # 5 ghosts among 45 text rows: quarantined, and the release still goes out with the other 40;
    # 10 of 45 is a systematic failure of the engine, and the release fails.
    for ghosts, ok in ((5, True), (10, False)):
        frame = records(removal=["text"] * 45, ghost_score=[1.0] * (45 - ghosts) + [2.5] * ghosts)
        (outcome,) = gate_images(frame, Config())
        assert outcome.success is ok and len(outcome.row_failures) == ghosts


def test_blur_rows_get_the_blur_suite():
    frame = records(action=["blur", "blur"], texture_ratio=[None, None], noise_ratio=[None, None],
                    privacy_residual=[0.03, 0.4])
    (outcome,) = gate_images(frame, Config())
    assert outcome.suite == "image_blur" and list(outcome.row_failures) == ["img-1"]


def test_release_suite_checks_the_row_count_and_the_quarantine_share():
    frame = records(status=["published"] * 7 + ["quarantined"] * 3)
    outcome = gate_release(frame, input_rows=10, config=Config())
    assert outcome.failed_expectations == ["expect_column_values_to_be_in_set(status)"]  # 30% > 20%
    lenient = Config.model_validate({"gate": {"max_quarantine_fraction": 0.5}})
    assert gate_release(frame, 10, lenient).success
    assert "expect_table_row_count_to_equal" in gate_release(frame, 11, lenient).failed_expectations


def test_release_medians():
    smudged = records(texture_ratio=[0.2] * 5)
    outcome = gate_release(smudged, 5, Config())
    assert outcome.failed_expectations == ["expect_column_median_to_be_between(texture_ratio)"]


def test_overrides_change_a_band_per_deployment():
    config = Config.model_validate({"gate": {"overrides": [
        {"suite": "image_remove", "expectation": "expect_column_values_to_be_between", "column": "texture_ratio",
         "kwargs": {"min_value": 0.05}}]}})
    (outcome,) = gate_images(records(texture_ratio=[1.0, 0.1]), config)
    assert outcome.row_failures == {}
    with pytest.raises(ValueError, match="matches no expectation"):
        load_suite("image_remove", overrides=[SuiteOverride(suite="image_remove", expectation="expect_nothing", kwargs={})])


def test_validate_returns_the_gx_result_as_json():
    outcome = validate(records(texture_ratio=[1.0]), load_suite("image_remove"))
    text = json.dumps(outcome.result, default=str)
    assert "expect_column_values_to_be_between" in text and outcome.result["success"] is True


def test_medians_of_nothing_are_skipped_not_failed():
    only_blur = records(texture_ratio=[np.nan] * 3, noise_ratio=[np.nan] * 3, structure_continuity=[np.nan] * 3)
    outcome = gate_release(only_blur, 3, Config())
    assert outcome.success
    assert "expect_column_median_to_be_between(texture_ratio)" in outcome.result["skipped_for_lack_of_values"]
    assert gate_release(records(texture_ratio=[1.0]).iloc[:0], 0, Config()).success


def test_text_the_detector_still_finds_is_refused():
    frame = records(text_detected=[False, True, None])
    (outcome,) = gate_images(frame, Config())
    assert outcome.row_failures == {"img-1": ["expect_column_values_to_be_in_set(text_detected)"]}


def test_a_rows_refusals_before_writing_are_what_gx_says_of_it_after():
    """The partition retries an edit `row_refusals` refuses; GX, run later on all rows, must agree row by row."""
    from tasks.gate import load_suite, row_refusals

    frame = records(texture_ratio=[1.0, 0.1, 1.1, None, 1.0], seam_score=[1.0, 1.0, 5.0, 1.0, 1.0],
                    outside_changed=[0, 0, 0, 3, 0], remnant_score=[0.01, None, 0.02, 0.0, 0.5],
                    text_detected=[False, None, True, False, None])
    (outcome,) = gate_images(frame, Config())
    suite = load_suite("image_remove")
    for row in frame.to_dict("records"):
        row = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        assert sorted(row_refusals(row, suite)) == sorted(outcome.row_failures.get(row["image_id"], [])), row["image_id"]
