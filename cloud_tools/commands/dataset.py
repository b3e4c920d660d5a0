"""``dataset pull|stats`` and ``label``: captured frames from the devices' storage to labels.

    dataset pull DIR [--device D] [--since T] [--until T] [--policy P ...]
    dataset stats DIR [--json]
    label DIR [--port N] [--oracle truth]

``pull`` reads the container the devices' captures reach (``AZURE_STORAGE_CONNECTION_STRING``
or ``--connection-string``). ``label`` serves a page on 127.0.0.1 for a person to label the
frames; ``--oracle truth`` labels them from the synthetic camera's ground truth instead.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cloud_tools.dataset.captures import captures, label_record, read_labels, write_labels
from cloud_tools.dataset.pull import PullFilter, parse_time, pull
from cloud_tools.dataset.stats import dataset_stats, print_stats
from cloud_tools.errors import USAGE, CliError
from cloud_tools.model_file import ModelFileError, read_spec
from cloud_tools.model_storage import ENV_STORAGE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("dataset", help="captured frames: pull them, count them")
    verbs = parser.add_subparsers(dest="verb", required=True)
    pulling = verbs.add_parser("pull", help="captures from Blob Storage into a folder")
    pulling.add_argument("folder", type=Path)
    pulling.add_argument("--container", default="captures")
    pulling.add_argument("--connection-string", help=f"default: ${ENV_STORAGE}")
    pulling.add_argument("--device", help="one device's captures")
    pulling.add_argument("--since", help="from this UTC date or time (ISO 8601)")
    pulling.add_argument("--until", help="before this UTC date or time")
    pulling.add_argument(
        "--policy",
        action="append",
        choices=("low_confidence", "margin", "classes", "random"),
        help="only captures of this policy (repeatable)",
    )
    pulling.set_defaults(run=_pull)
    stats = verbs.add_parser("stats", help="what a dataset folder holds")
    stats.add_argument("folder", type=Path)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=_stats)

    label = commands.add_parser("label", help="label captured frames on a local web page")
    label.add_argument("folder", type=Path)
    label.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    label.add_argument("--port", type=int, default=8765, help="0 picks a free one")
    label.add_argument(
        "--oracle",
        choices=("truth",),
        help="no page: label every frame from the ground truth the synthetic camera stamps on "
        "it (the 'truth' property, kept in the sidecar when the classifier passes it through); "
        "for demos and tests, not for real cameras",
    )
    label.add_argument(
        "--model",
        type=Path,
        help="an ONNX model with its spec: its class names are the ones offered",
    )
    label.add_argument(
        "--labels",
        help="the class names offered, comma-separated (default: "
        "every label the captures' top-k name)",
    )
    label.set_defaults(run=_label)


def _pull(args: argparse.Namespace) -> int:
    connection = args.connection_string or os.environ.get(ENV_STORAGE)
    if not connection:
        raise CliError(f"no storage connection string: set {ENV_STORAGE}", USAGE)
    wanted = PullFilter(
        device=args.device,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        policies=frozenset(args.policy or ()),
    )
    args.folder.mkdir(parents=True, exist_ok=True)
    result = pull(connection, args.container, args.folder, wanted)
    print(
        f"pulled {result.pulled} capture(s) ({result.bytes / 1e6:.1f} MB) into {args.folder}; "
        f"{result.already_here} already there"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    stats = dataset_stats(args.folder)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print_stats(stats)
    return 0


def _label(args: argparse.Namespace) -> int:
    if args.oracle == "truth":
        return _label_by_oracle(args.folder)
    from cloud_tools.dataset.label_server import serve_labelling

    classes = [c.strip() for c in args.labels.split(",") if c.strip()] if args.labels else None
    if args.model is not None:
        try:
            classes = list(read_spec(args.model).labels)
        except ModelFileError as e:
            raise CliError(f"{args.model}: {e}", USAGE) from e
    return serve_labelling(args.folder, args.host, args.port, classes)


def _label_by_oracle(folder: Path) -> int:
    labels = read_labels(folder)
    added = missing = 0
    for capture in captures(folder):
        if capture.key in labels:
            continue
        if capture.truth is None:
            missing += 1
            continue
        labels[capture.key] = label_record(capture, capture.truth, "oracle:truth")
        added += 1
    write_labels(folder, labels)
    print(
        f"oracle: labelled {added} frame(s) from their ground truth; {len(labels)} labelled in "
        f"all; {missing} without ground truth left unlabelled"
    )
    return 0
