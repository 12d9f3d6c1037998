"""`clean-clarify`: the command line, a thin mirror of the flow's parameters.

Commands: `run` (sanitize and publish), `validate` (re-check a release), `diff A B` (rows added,
removed, changed and newly quarantined between two releases; `--json` for tools), `demo`.
A published release loads with Hugging Face `datasets` or as WebDataset shards; those libraries
come with the optional `[datasets]` extra (README "Training-ready releases").

Exit codes: 0 published (or valid, or diffed), 1 quality gate failed (nothing published; or, for
`validate`, the release is not valid), 2 bad input or usage (manifest, config, release id or path,
output path), 3 anything else (storage, internal error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

# Before Prefect is imported: no telemetry, and no network is needed for the embedded server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clean-clarify", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="sanitize the images of a manifest and publish a release")
    run.add_argument("manifest", help="Parquet manifest: a local path or an fsspec URL")
    run.add_argument("--output", required=True, help="release store: a local folder or an fsspec URL")
    run.add_argument("--config", help="YAML config file (see README)")
    run.add_argument("--release-id", help="name of the release folder (default: UTC time + input hash)")
    run.add_argument("--runner", choices=["threads", "dask"], default="threads",
                     help="threads: partitions in this process; dask: on a dask.distributed cluster")
    run.add_argument("--dask-address", help="scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786 "
                     "(default with --runner dask: a local cluster, one worker process per core)")

    validate = commands.add_parser("validate", help="re-run the quality suites on a published release")
    validate.add_argument("release", help="a release folder: OUT/releases/<id> (local path or fsspec URL)")
    validate.add_argument("--config", help="YAML config whose gate settings replace the release's own")

    diff = commands.add_parser("diff", help="rows added, removed, changed (sha256) and newly quarantined from "
                               "release A to release B")
    diff.add_argument("release_a", help="the older release folder: OUT/releases/<id> (local path or fsspec URL)")
    diff.add_argument("release_b", help="the newer release folder")
    diff.add_argument("--json", action="store_true", help="print the diff as JSON instead of a table")

    demo = commands.add_parser("demo", help="write a demo manifest from real photos that scikit-image ships")
    demo.add_argument("folder", help="where to write images, masks, truth/ and manifest.parquet")
    return parser


def _run(args: argparse.Namespace) -> int:
    import yaml
    from pydantic import ValidationError

    from data_contracts.manifest import ManifestError, read_manifest
    from tasks.config import load_config
    from tasks.gate import GateFailed
    from tasks.plan import RunRefused, check_output, check_release_id

    try:
        config = load_config(args.config)
        # Fail fast, before the orchestrator starts, on a manifest, id or output that cannot work.
        if args.release_id is not None:
            check_release_id(args.release_id)
        check_output(args.output)
        read_manifest(args.manifest if "://" in args.manifest else os.path.abspath(args.manifest))
    except (ManifestError, ValidationError, ValueError, OSError, yaml.YAMLError) as exc:
        print(f"clean-clarify: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from flows.sanitize import sanitize, task_runner

    try:
        runner = task_runner(args.runner, config.workers, args.dask_address)
        summary = sanitize.with_options(task_runner=runner)(
            manifest=args.manifest,
            output=args.output,
            config=config.model_dump(mode="json"),
            release_id=args.release_id,
        )
    except (ManifestError, RunRefused) as exc:
        print(f"clean-clarify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GateFailed as exc:
        print(f"clean-clarify: {exc}\nThe release folder is kept for inspection; LATEST did not move.", file=sys.stderr)
        return EXIT_GATE
    print(json.dumps({k: summary[k] for k in ("release_id", "release_uri", "latest", "counts", "quarantine_reasons",
                                              "report")},
                     indent=2))
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    import yaml

    from tasks.config import load_config
    from tasks.uris import NotARelease
    from tasks.validate import validate_release

    release = args.release if "://" in args.release else os.path.abspath(args.release)
    try:
        config = load_config(args.config) if args.config else None
    except (ValueError, OSError, yaml.YAMLError) as exc:
        print(f"clean-clarify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        problems = validate_release(release, config)
    except NotARelease as exc:  # a wrong path, not a release that fails
        print(f"clean-clarify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{release}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
    return EXIT_GATE if problems else EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from tasks.diff import diff_releases, format_diff
    from tasks.uris import NotARelease

    releases = [uri if "://" in uri else os.path.abspath(uri) for uri in (args.release_a, args.release_b)]
    try:
        diff = diff_releases(*releases)
    except NotARelease as exc:  # storage errors are exit 3, like everywhere else
        print(f"clean-clarify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(diff, indent=2) if args.json else format_diff(diff))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from tasks.demo import write_demo

    manifest = write_demo(args.folder)
    print(f"demo manifest written: {manifest}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on bad usage
    try:
        return {"run": _run, "validate": _validate, "diff": _diff, "demo": _demo}[args.command](args)
    except Exception as exc:
        traceback.print_exc()
        print(f"clean-clarify: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
