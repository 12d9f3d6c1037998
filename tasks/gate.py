"""Gate: the release-level checks that decide whether a release may be marked complete.

Per-image quality suites (Great Expectations) arrive with the Measure issue; these are the
invariants that hold for every release whatever the engines.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


class GateFailed(RuntimeError):
    def __init__(self, release_uri: str, failures: list[str]):
        self.release_uri = release_uri
        self.failures = failures
        super().__init__(f"quality gate failed for {release_uri}: " + "; ".join(failures))


def release_failures(records: pa.Table, input_ids: list[str], max_quarantine_fraction: float) -> list[str]:
    """Every reason this release must not be published; empty when it may be."""
    failures: list[str] = []
    status = records.column("status")
    published = pc.sum(pc.equal(status, "published")).as_py() or 0
    quarantined = pc.sum(pc.equal(status, "quarantined")).as_py() or 0
    if published + quarantined != len(input_ids) or sorted(records.column("image_id").to_pylist()) != sorted(input_ids):
        failures.append(
            f"row invariant broken: {published} published + {quarantined} quarantined != {len(input_ids)} input rows"
        )
    if input_ids and quarantined / len(input_ids) > max_quarantine_fraction:
        failures.append(
            f"{quarantined} of {len(input_ids)} rows quarantined ({quarantined / len(input_ids):.0%}), "
            f"over max_quarantine_fraction {max_quarantine_fraction:.0%}"
        )
    changed = records.filter(pc.and_(pc.equal(status, "published"), pc.greater(records.column("outside_changed"), 0)))
    if changed.num_rows:
        failures.append(f"pixels outside the mask changed in {changed.column('image_id').to_pylist()[:10]}")
    return failures
