"""A downstream flow that the published event starts (deployments/prefect.yaml, `release-published`).

It re-validates the release where it landed (`clean-clarify validate`) and, when it is valid,
moves a pointer that training or sync jobs follow: `OUT/VALIDATED` (beside `OUT/LATEST`) unless
`pointer_uri` names another file. An invalid release fails the run and leaves the pointer alone.
"""

from __future__ import annotations

from prefect import flow

from tasks.uris import join, parent_of, replace_atomically
from tasks.validate import validate_release


def default_pointer(release_uri: str) -> str:
    """`OUT/VALIDATED` for a release at `OUT/releases/<id>`."""
    return join(parent_of(parent_of(release_uri.rstrip("/"))), "VALIDATED")


@flow(name="validate-release", log_prints=True)
def validate_published_release(release_uri: str, release_id: str, pointer_uri: str | None = None) -> str:
    """Validate the release at `release_uri`; on success write `release_id` to the pointer file."""
    problems = validate_release(release_uri)
    if problems:
        raise ValueError(f"release {release_id} at {release_uri} is not valid: " + "; ".join(problems))
    pointer = pointer_uri or default_pointer(release_uri)
    replace_atomically(pointer, f"{release_id}\n".encode())
    print(f"release {release_id} is valid: {pointer} → {release_id}")
    return pointer
