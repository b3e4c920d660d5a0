"""Score image files locally: ``python -m classifier.score [--model M.onnx] PATH...``.

For users without a device. Each file becomes a message on the module's ``frames`` input of an
in-process hub, so the files go through exactly the module's code: intake, decode,
preprocess, batching, inference and the prediction schema. Folders are searched recursively.

A bad file costs one error line, never the run: the module gives every message an outcome,
and what is not a regular file (a FIFO would block the read for ever) or cannot be read is
reported here without reaching the module. At most ``MAX_FRAME_BYTES`` + 1 bytes of a file are
read: the module refuses anything longer anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import os
import sys
from dataclasses import replace
from pathlib import Path

import cv2

from classifier.config import ModuleConfig
from classifier.errors import ClassifierError
from classifier.frame_queue import OverflowPolicy
from classifier.local_run import classifier_on_local_hub
from edge_module.hub import InboundMessage
from edge_module.local_hub import LocalHub

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".json"}


def find_images(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def read_frame(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (at most ``max_bytes`` + 1); OSError for what is not a regular file."""
    if not path.is_file():
        raise OSError(f"{path} is not a regular file")
    with path.open("rb") as file:
        return file.read(max_bytes + 1)


async def score_files(
    files: list[Path], config: ModuleConfig, unreadable: dict[Path, str] | None = None
) -> LocalHub:
    """Scores ``files``; those that cannot be read are put in ``unreadable`` with why."""
    async with classifier_on_local_hub(config) as local:
        for path in files:
            try:
                body = read_frame(path, config.pipeline.limits.max_frame_bytes)
            except OSError as e:
                if unreadable is not None:
                    unreadable[path] = str(e)
                continue
            content_type, _ = mimetypes.guess_type(path.name)
            await local.hub.deliver(
                InboundMessage(
                    input_name=config.input_name,
                    body=body,
                    content_type=content_type,
                    message_id=str(path),
                    properties={"source_id": "score"},
                )
            )
    return local.hub  # the module drained on leaving: every file delivered has its outcome


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m classifier.score", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the bundled model)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="print one JSON message per line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = ModuleConfig.from_env(os.environ)
    except ClassifierError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    config = replace(
        config,
        model_path=args.model or config.model_path,
        # Files are not live video: nothing may be dropped, and the drain waits for all.
        pipeline=replace(
            config.pipeline,
            overflow=OverflowPolicy.BLOCK,
            top_k=args.top_k,
            confidence_threshold=args.threshold,
        ),
        shutdown_grace_s=3600.0,
    )
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = find_images(args.paths)
    if not files:
        print("error: no image files found", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    unreadable: dict[Path, str] = {}
    try:
        hub = asyncio.run(score_files(files, config, unreadable))
    except (ClassifierError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    predictions = hub.sent[config.predictions_output]
    errors = hub.sent[config.errors_output]
    for path, why in unreadable.items():
        print(f"{path}: ERROR unreadable: {why}")
    for message in predictions + errors:
        doc = json.loads(message.body)
        if args.json:
            print(json.dumps(doc))
        elif "error" in doc:
            print(f"{doc['frame']['id']}: ERROR {doc['error']['code']}: {doc['error']['reason']}")
        else:
            tags = [i["classification"]["tag"] for i in doc["inferences"]]
            ranked = ", ".join(f"{t['value']} {t['confidence']:.3f}" for t in tags) or "(none)"
            print(f"{doc['frame']['id']}: {ranked}")
    refused = len(errors) + len(unreadable)
    if not args.json:
        print(f"{len(predictions)} scored, {refused} refused", file=sys.stderr)
    return 1 if refused and not predictions else 0


if __name__ == "__main__":
    sys.exit(main())
