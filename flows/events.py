"""Release events in Prefect: what downstream deployments and automations react to.

`clean-clarify.release.published` when a release is published, `clean-clarify.release.failed`
when the gate refuses one. The resource is the release (`clean-clarify.release.<id>`, with its
URI as a label); the payload carries the counts, the gate outcome and the quarantine reasons.
Inside a flow run, Prefect adds the run as a related resource.
"""

from __future__ import annotations

from prefect.events import emit_event

PUBLISHED = "clean-clarify.release.published"
FAILED = "clean-clarify.release.failed"
RESOURCE_PREFIX = "clean-clarify.release."
URI_LABEL = "clean-clarify.release.uri"


def release_event(summary: dict) -> dict:
    """The event for a release summary (what `publish_release` returns or `GateFailed` carries),
    as keyword arguments of `emit_event`."""
    release_id, uri, status = summary["release_id"], summary["release_uri"], summary["status"]
    return {
        "event": PUBLISHED if status == "published" else FAILED,
        "resource": {
            "prefect.resource.id": f"{RESOURCE_PREFIX}{release_id}",
            "prefect.resource.name": release_id,
            URI_LABEL: uri,
            "clean-clarify.release.status": status,
        },
        "payload": {
            "release_id": release_id,
            "release_uri": uri,
            "status": status,
            "latest": summary.get("latest", False),  # whether OUT/LATEST now names this release
            "counts": summary["counts"],
            "gate_failures": summary["gate_failures"],
            "validation": summary["validation"],
            "quarantine_reasons": summary["quarantine_reasons"],
        },
    }


def emit_release_event(summary: dict) -> None:
    emit_event(**release_event(summary))
