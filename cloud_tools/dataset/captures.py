"""A dataset folder as ``dataset pull`` writes it and ``label`` and ``train`` read it.

    DIR/<device>/<YYYY-MM-DD>/<time>_<policy>_<frame>.jpg    the frame, as captured
    DIR/<device>/<YYYY-MM-DD>/<time>_<policy>_<frame>.json   its sidecar (schema capture/1)
    DIR/labels.jsonl                                         one line per labelled frame

The folder mirrors the container's blob names, so pulling again adds only what is new. A
frame's key is its sidecar's path relative to DIR. A labels line:

    {"frame": "<key>", "label": "star", "by": "human" | "oracle:truth",
     "model_top1": "heart", "labelled_at": "2026-12-06T20:01:02.345Z"}

One fifth of the frames (by a hash of the key, so the same whatever else is in the folder)
is held out: ``train`` never learns from them and ``evaluate`` measures on them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import synthdata
from cloud_tools.errors import USAGE, CliError

LABELS_FILE = "labels.jsonl"
CAPTURE_SCHEMA = "edge-classifier/capture/1"
HELD_OUT_ONE_IN = 5


@dataclass(frozen=True)
class Capture:
    key: str  # the sidecar's path relative to the dataset folder
    sidecar: dict[str, Any]
    frame_path: Path

    @property
    def top_k(self) -> list[tuple[str, float]]:
        return [(str(t["label"]), float(t["confidence"])) for t in self.sidecar.get("top_k", [])]

    @property
    def policy(self) -> str:
        return str(self.sidecar.get("policy"))

    @property
    def truth(self) -> str | None:
        """The synthetic camera's ground truth, when the frame carried it (demos, tests)."""
        value = (self.sidecar.get("frame") or {}).get("properties", {}).get("truth")
        return str(value) if value else None

    @property
    def held_out(self) -> bool:
        return is_held_out(self.key)


def is_held_out(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % HELD_OUT_ONE_IN == 0


def captures(folder: Path) -> list[Capture]:
    """Every capture in the folder whose frame is there too, in name (time) order."""
    if not folder.is_dir():
        raise CliError(f"no dataset folder at {folder}", USAGE)
    found = []
    for path in sorted(folder.rglob("*.json")):
        sidecar = _sidecar(path)
        if sidecar is None:
            continue
        frame = path.parent / Path(str(sidecar["frame"]["blob"])).name
        if frame.is_file():
            found.append(Capture(path.relative_to(folder).as_posix(), sidecar, frame))
    return found


def _sidecar(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != CAPTURE_SCHEMA:
        return None
    frame = doc.get("frame")
    if not isinstance(frame, dict) or not isinstance(frame.get("blob"), str):
        return None
    # A sidecar is device-written: one that does not hold what the tools read is skipped
    # whole, never half-read (a bad top-k or properties would stop the page or the stats).
    properties = frame.get("properties", {})
    top_k = doc.get("top_k", [])
    if not isinstance(properties, dict) or not isinstance(top_k, list):
        return None
    if not all(_is_score(entry) for entry in top_k):
        return None
    return doc


def _is_score(entry: object) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
        return False
    confidence = entry.get("confidence")
    return (
        isinstance(confidence, int | float)
        and not isinstance(confidence, bool)
        and math.isfinite(confidence)
    )


def read_labels(folder: Path) -> dict[str, dict[str, Any]]:
    """Labels by frame key; a later line for a frame replaces an earlier one."""
    path = folder / LABELS_FILE
    labels: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return labels
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            labels[str(record["frame"])] = record
        except (ValueError, KeyError, TypeError) as e:
            raise CliError(f"{path}:{number}: not a label line ({e})") from e
    return labels


def write_labels(folder: Path, labels: dict[str, dict[str, Any]]) -> None:
    """The whole file, replaced atomically: a crash leaves the old file or the new one."""
    path = folder / LABELS_FILE
    temporary = path.with_suffix(".jsonl.tmp")
    with temporary.open("w") as out:
        for record in labels.values():
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


def label_record(capture: Capture, label: str, by: str) -> dict[str, Any]:
    top = capture.top_k[0][0] if capture.top_k else None
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"frame": capture.key, "label": label, "by": by, "model_top1": top, "labelled_at": now}


def read_image(path: Path, size: int = 32) -> np.ndarray:
    """A captured frame as the module feeds it to the model: decoded, stretched, RGB."""
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CliError(f"{path}: not an image OpenCV can decode")
    rgb: np.ndarray = synthdata.shrink(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
    return rgb


def labelled(folder: Path) -> Iterator[tuple[Capture, str]]:
    """Each labelled capture with its label."""
    labels = read_labels(folder)
    for capture in captures(folder):
        record = labels.get(capture.key)
        if record is not None:
            yield capture, str(record["label"])
