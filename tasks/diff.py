"""What changed between two releases: `clean-clarify diff A B`, for release notes and review.

Rows are matched by `image_id`, from each release's `manifest.parquet` (published) and
`quarantine.parquet`:

- added: published in B, not published in A (new, or quarantined in A);
- removed: published in A, in neither table of B (the row left the manifest);
- changed: published in both with a different sha256 (the published file differs);
- newly quarantined: quarantined in B, not quarantined in A (published in A, or new);
- unchanged: published in both with the same sha256 (a count).
"""

from __future__ import annotations

from tasks.uris import NotARelease, exists, join, read_parquet

KINDS = ("added", "removed", "changed", "newly_quarantined")


def _read_release(uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """{image_id: sha256} of the published rows, {image_id: reason} of the quarantined ones."""
    for name in ("manifest.parquet", "quarantine.parquet"):
        if not exists(join(uri, name)):
            raise NotARelease(f"{uri} is not a release: {name} is missing")
    published = read_parquet(join(uri, "manifest.parquet")).select(["image_id", "sha256"]).to_pylist()
    quarantined = read_parquet(join(uri, "quarantine.parquet")).select(["image_id", "reason"]).to_pylist()
    return ({r["image_id"]: r["sha256"] for r in published}, {r["image_id"]: r["reason"] for r in quarantined})


def diff_releases(a_uri: str, b_uri: str) -> dict:
    """The rows of release B that differ from release A, by kind, each list sorted by image_id."""
    a_published, a_quarantined = _read_release(a_uri)
    b_published, b_quarantined = _read_release(b_uri)
    both = sorted(a_published.keys() & b_published.keys())
    return {
        "a": a_uri,
        "b": b_uri,
        "added": [{"image_id": i, "sha256": b_published[i], "was": "quarantined" if i in a_quarantined else "absent"}
                  for i in sorted(b_published.keys() - a_published.keys())],
        "removed": [{"image_id": i, "sha256": a_published[i]}
                    for i in sorted(a_published.keys() - b_published.keys() - b_quarantined.keys())],
        "changed": [{"image_id": i, "sha256_a": a_published[i], "sha256_b": b_published[i]}
                    for i in both if a_published[i] != b_published[i]],
        "newly_quarantined": [{"image_id": i, "reason": b_quarantined[i],
                               "was": "published" if i in a_published else "absent"}
                              for i in sorted(b_quarantined.keys() - a_quarantined.keys())],
        "unchanged": sum(1 for i in both if a_published[i] == b_published[i]),
    }


def _detail(kind: str, row: dict) -> str:
    if kind == "changed":
        return f"sha256 {row['sha256_a'][:12]} → {row['sha256_b'][:12]}"
    if kind == "newly_quarantined":
        return f"(was {row['was']}) {row['reason']}"
    if kind == "added":
        return f"sha256 {row['sha256'][:12]}" + (" (was quarantined)" if row["was"] == "quarantined" else "")
    return f"sha256 {row['sha256'][:12]}"


def format_diff(diff: dict) -> str:
    """The diff as a plain-text table: one line per row that differs, then the totals."""
    lines = [f"A: {diff['a']}", f"B: {diff['b']}", ""]
    rows = [(kind.replace("_", " "), row["image_id"], _detail(kind, row)) for kind in KINDS for row in diff[kind]]
    if rows:
        widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(("change", "image_id"))]
        lines.append(f"{'change':<{widths[0]}}  {'image_id':<{widths[1]}}  detail")
        lines += [f"{kind:<{widths[0]}}  {image_id:<{widths[1]}}  {detail}" for kind, image_id, detail in rows]
        lines.append("")
    lines.append(", ".join(f"{len(diff[k])} {k.replace('_', ' ')}" for k in KINDS) + f", {diff['unchanged']} unchanged")
    return "\n".join(lines)
