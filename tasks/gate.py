"""Gate: Great Expectations suites decide which images are published and whether a release is.

The suites are JSON files in `data_contracts/suites/` (or a folder the config names), loaded at
run time, never built in code:

- `image_remove.json` runs on the edited removal rows, `image_blur.json` on the privacy-blur rows:
  a row that any expectation finds unexpected is quarantined, with the failed expectations as its
  reason. An expectation's `mostly` says how many such rows the release tolerates: if the suite
  fails as a whole, so does the release.
- `release.json` runs on every row of the run (published and quarantined) with the input row count
  as a parameter: the row invariant, the quarantine share, the medians of the ratios.

Config overrides change an expectation's kwargs per deployment without editing the files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import data_contracts

# Beside the data_contracts package, wherever it is installed (the wheel carries the JSON files).
SUITES_DIR = Path(data_contracts.__file__).resolve().parent / "suites"
IMAGE_SUITES = {"remove": "image_remove", "blur": "image_blur"}
RELEASE_SUITE = "release"

log = logging.getLogger(__name__)


class GateFailed(RuntimeError):
    def __init__(self, release_uri: str, failures: list[str], summary: dict | None = None):
        self.release_uri = release_uri
        self.failures = failures
        self.summary = summary  # what release.json says, for the UI
        super().__init__(f"quality gate failed for {release_uri}: " + "; ".join(failures))


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    result: dict  # the GX validation result, JSON-ready
    row_failures: dict[str, list[str]] = field(default_factory=dict)  # image_id -> failed expectations
    failed_expectations: list[str] = field(default_factory=list)


def load_suite(name: str, suites_dir: str | None = None, overrides: list | None = None,
               mostly_status: float | None = None) -> dict:
    """A suite's JSON with the config's overrides applied."""
    path = Path(suites_dir or SUITES_DIR) / f"{name}.json"
    suite = json.loads(path.read_text())
    for override in overrides or []:
        if override.suite != name:
            continue
        matched = [
            e for e in suite["expectations"]
            if e["type"] == override.expectation and (override.column is None or e["kwargs"].get("column") == override.column)
        ]
        if not matched:
            raise ValueError(f"override matches no expectation: suite {name!r}, {override.expectation}({override.column})")
        for expectation in matched:
            expectation["kwargs"].update(override.kwargs)
    if mostly_status is not None:
        for expectation in suite["expectations"]:
            if expectation["kwargs"].get("column") == "status" and expectation["type"] == "expect_column_values_to_be_in_set":
                expectation["kwargs"]["mostly"] = mostly_status
    return suite


def _label(expectation: dict) -> str:
    column = expectation["kwargs"].get("column")
    return f"{expectation['type']}({column})" if column else expectation["type"]


_context = None
_AGGREGATES = {
    "expect_column_median_to_be_between", "expect_column_mean_to_be_between",
    "expect_column_max_to_be_between", "expect_column_min_to_be_between",
}


def _gx_context():
    global _context
    if _context is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _context = gx.get_context(mode="ephemeral")
        _context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return _context


def validate(frame: pd.DataFrame, suite_json: dict, parameters: dict | None = None) -> SuiteOutcome:
    """Run one suite on `frame` (one row per image, with `image_id`) with GX Core."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    name = suite_json["name"]
    # An aggregate (a median, a max) of a column with no values says nothing: a release of only
    # blurred rows has no texture ratios. Such expectations are skipped, and the result says so.
    skipped = [e for e in suite_json["expectations"]
               if e["type"] in _AGGREGATES and frame[e["kwargs"]["column"]].notna().sum() == 0]
    suite_json = {**suite_json, "expectations": [e for e in suite_json["expectations"] if e not in skipped]}
    run_key = uuid.uuid4().hex[:12]  # the ephemeral context lives for the process: names must not clash
    context = _gx_context()
    frame = frame.reset_index(drop=True)
    suite = context.suites.add(ExpectationSuite(
        name=f"{name}-{run_key}",
        expectations=[ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta", {}))
                      for e in suite_json["expectations"]],
        meta=suite_json.get("meta", {}),
    ))
    source = context.data_sources.add_or_update_pandas("records")
    asset = source.add_dataframe_asset(f"rows-{run_key}")
    batch = asset.add_batch_definition_whole_dataframe("all")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name=f"validate-{name}-{run_key}")
    )
    result = definition.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=parameters or {},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["image_id"]},
    )
    outcome = SuiteOutcome(suite=name, success=bool(result.success), result=result.to_json_dict())
    outcome.result["skipped_for_lack_of_values"] = [_label(e) for e in skipped]
    ids = frame["image_id"].tolist()
    for item in result.results:
        label = _label({"type": item.expectation_config.type, "kwargs": item.expectation_config.kwargs})
        if not item.success:
            outcome.failed_expectations.append(label)
        for index in (item.result or {}).get("unexpected_index_list") or []:
            image_id = index["image_id"] if isinstance(index, dict) else ids[index]
            outcome.row_failures.setdefault(image_id, []).append(label)
    return outcome


def _unexpected(expectation: dict, value) -> bool | None:
    """Whether one row's `value` is unexpected to a column-map expectation, as GX would judge it;
    None for an expectation it cannot judge alone (an aggregate, or a type this does not know)."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if kind == "expect_column_values_to_not_be_null":
        return missing
    if missing:  # GX leaves nulls out of the other column-map expectations
        return False
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        strict_low, strict_high = kwargs.get("strict_min", False), kwargs.get("strict_max", False)
        below = low is not None and (value <= low if strict_low else value < low)
        above = high is not None and (value >= high if strict_high else value > high)
        return below or above
    if kind == "expect_column_values_to_be_in_set":
        return value not in kwargs["value_set"]
    return None


def row_refusals(record: dict, suite: dict) -> list[str]:
    """The expectations of an image suite that one row's `record` fails, judged as GX judges each
    row (`mostly` aside: a row it flags is quarantined whatever share of rows the suite tolerates).

    The partition asks this of each edit before it writes it, so that a refused edit is retried with
    another candidate; the GX run over all rows afterwards stays the judge of what is published."""
    return [_label(e) for e in suite["expectations"]
            if "column" in e["kwargs"] and _unexpected(e, record.get(e["kwargs"]["column"]))]


def gate_images(records: pd.DataFrame, config) -> list[SuiteOutcome]:
    """Run the per-image suites on the edited rows (those about to be published)."""
    outcomes = []
    edited = records[(records["status"] == "published") & (records["mask_fraction"] > 0)]
    for action, suite_name in IMAGE_SUITES.items():
        rows = edited[edited["action"] == action]
        if rows.empty:
            continue
        suite = load_suite(suite_name, config.gate.suites_dir, config.gate.overrides)
        outcomes.append(validate(rows, suite))
    return outcomes


def gate_release(records: pd.DataFrame, input_rows: int, config) -> SuiteOutcome:
    """Run the release suite on every row of the run (after per-image quarantine)."""
    suite = load_suite(RELEASE_SUITE, config.gate.suites_dir, config.gate.overrides,
                       mostly_status=1.0 - config.gate.max_quarantine_fraction)
    return validate(records, suite, {"input_rows": input_rows})
