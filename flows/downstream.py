"""A downstream flow that the published event starts (deployments/prefect.yaml, `release-published`).

It re-validates the release where it landed (`clean-clarify validate`) and, when it is valid,
moves a pointer that training or sync jobs follow: `OUT/VALIDATED` (beside `OUT/LATEST`) unless
`pointer_uri` names another file. An invalid release fails the run and leaves the pointer alone.
Like `LATEST`, the pointer moves only forward: a run validating an older release after a newer
one leaves it at the newer.
"""

from __future__ import annotations

from prefect import flow

from tasks.claims import advance_pointer, run_order
from tasks.uris import join, parent_of
from tasks.validate import validate_release


def store_of(release_uri: str) -> str:
    """`OUT` for a release at `OUT/releases/<id>`."""
    return parent_of(parent_of(release_uri.rstrip("/")))


def default_pointer(release_uri: str) -> str:
    """`OUT/VALIDATED` for a release at `OUT/releases/<id>`."""
    return join(store_of(release_uri), "VALIDATED")


@flow(name="validate-release", log_prints=True)
def validate_published_release(release_uri: str, release_id: str, pointer_uri: str | None = None) -> str:
    """Validate the release at `release_uri`; on success write `release_id` to the pointer file."""
    problems = validate_release(release_uri)
    if problems:
        raise ValueError(f"release {release_id} at {release_uri} is not valid: " + "; ".join(problems))
    pointer, store = pointer_uri or default_pointer(release_uri), store_of(release_uri)
    if advance_pointer(pointer, store, release_id, run_order(store, release_id)[0]):
        print(f"release {release_id} is valid: {pointer} → {release_id}")
    else:
        print(f"release {release_id} is valid; {pointer} stays at a release of a later run")
    return pointer
