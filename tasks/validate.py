"""Re-validate a published release: what `clean-clarify validate RELEASE` runs.

For release pipelines that gate downstream jobs: the release must be complete (`_SUCCESS`), every
published file must exist with the recorded sha256, every published row must pass the per-image
suites, and the release suite must pass on all rows. Nothing in the release is written.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from data_contracts.records import RELEASE_MEDIANS
from tasks.config import Config
from tasks.gate import gate_images, gate_release
from tasks.uris import NotARelease, RowError, exists, join, read_bytes, read_parquet


def validate_release(release_uri: str, config: Config | None = None) -> list[str]:
    """Every reason `release_uri` is not a valid release; empty when it is."""
    problems: list[str] = []
    if not exists(join(release_uri, "release.json")):
        # A wrong path is a usage error, not a release that failed: callers branch on the difference.
        raise NotARelease(f"{release_uri} is not a release: release.json is missing")
    info = json.loads(read_bytes(join(release_uri, "release.json")))
    if not exists(join(release_uri, "_SUCCESS")):
        problems.append("the release is incomplete: _SUCCESS is missing" + (
            f" (its run failed: {'; '.join(info.get('gate_failures', []))})" if info.get("gate_failures") else ""))
    config = config or Config.model_validate(info["config"])
    published = read_parquet(join(release_uri, "manifest.parquet")).to_pandas()
    quarantined = read_parquet(join(release_uri, "quarantine.parquet")).to_pandas()

    for row in published.itertuples():
        try:
            digest = hashlib.sha256(read_bytes(join(release_uri, row.output_uri))).hexdigest()
        except RowError as exc:
            problems.append(f"{row.image_id}: {exc}")
            continue
        if digest != row.sha256:
            problems.append(f"{row.image_id}: {row.output_uri} has sha256 {digest[:12]}…, the manifest says {row.sha256[:12]}…")

    frame = published.drop(columns=[c for c in ("components", "flags") if c in published.columns]).assign(status="published")
    for outcome in gate_images(frame, config):
        for image_id, labels in outcome.row_failures.items():
            problems.append(f"{image_id}: published but fails {outcome.suite}: {', '.join(labels)}")
        problems += [f"{outcome.suite}: {label}" for label in outcome.failed_expectations]

    ratios = list(RELEASE_MEDIANS)
    rows = pd.concat([
        published.reindex(columns=["image_id", "outside_changed", *ratios]).assign(status="published"),
        quarantined.reindex(columns=["image_id"]).assign(status="quarantined", outside_changed=0),
    ], ignore_index=True)
    outcome = gate_release(rows, int(info["counts"]["input"]), config)
    problems += [f"release: {label}" for label in outcome.failed_expectations]
    return problems
