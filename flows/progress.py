"""What people watching a run see: Prefect UI artifacts, and a progress bar on a terminal."""

from __future__ import annotations

import sys

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)


class RunProgress:
    """A progress artifact in the Prefect UI, updated per partition; a bar on stderr if it is a TTY."""

    def __init__(self, release_id: str, partitions: int):
        self.total = max(partitions, 1)
        self.done = 0
        self.artifact_id = create_progress_artifact(
            progress=0.0, key="sanitize-progress", description=f"release {release_id}: partitions done"
        )
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=False)
            self.bar.start()
            self.bar_task = self.bar.add_task(f"release {release_id}", total=self.total)

    def advance(self) -> None:
        self.done += 1
        update_progress_artifact(self.artifact_id, progress=100.0 * self.done / self.total)
        if self.bar:
            self.bar.update(self.bar_task, completed=self.done)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def _link(uri: str) -> str:
    return uri if "://" in uri else f"file://{uri}"


def publish_artifacts(summary: dict) -> None:
    """The release summary as a table, and a markdown page linking the report and examples."""
    counts, medians = summary["counts"], summary["metric_medians"]
    rows = [{"item": k, "value": v} for k, v in counts.items()]
    rows += [{"item": f"median {k}", "value": None if v is None else round(v, 3)} for k, v in medians.items()]
    rows += [{"item": f"quarantined: {k}", "value": v} for k, v in summary["quarantine_reasons"].items()]
    create_table_artifact(key="release-summary", table=rows, description=f"release {summary['release_id']}")

    release = summary["release_uri"].rstrip("/")
    report = f"{release}/{summary['report']}"
    suites = "\n".join(
        f"| {suite} | {'passed' if v['success'] else 'FAILED'} | {', '.join(v['failed']) or '–'} |"
        for suite, v in summary["validation"].items()
    )
    examples = "\n".join(
        f"- {image_id}: [before]({_link(release + '/report/' + pair[0])}) · [after]({_link(release + '/report/' + pair[1])})"
        for image_id, pair in summary.get("report_examples", {}).items()
    )
    create_markdown_artifact(
        key="release-report",
        markdown=(
            f"# Release {summary['release_id']}: {summary['status']}\n\n"
            f"{counts['published']} published, {counts['quarantined']} quarantined of {counts['input']} rows "
            f"({counts['computed']} computed, {counts['reused']} reused).\n\n"
            f"**[Quality report]({_link(report)})** · release folder: `{release}`\n\n"
            f"| suite | outcome | failed expectations |\n|---|---|---|\n{suites}\n\n"
            f"## Worst edits (before / after)\n{examples or 'none'}\n"
        ),
        description="clean-clarify release report",
    )
