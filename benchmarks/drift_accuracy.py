"""The default model's accuracy on the synthetic camera's stream, undrifted and under each drift.

    python -m benchmarks.drift_accuracy [--frames 1000] [--strength 1.0] [--model PATH]

Frames follow the frame source's path (320x240, JPEG quality 85, the camera's default seed)
and the module's (decode, stretch to the model's input with area averaging), so the figures
are what a classifier behind a drifted camera scores. One row per drift kind, then all six at
half strength together, with each row's accuracy and mean top-1 confidence: a model that is
confidently wrong is what the capture policies have to find.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import synthdata
from benchmarks.machine import describe_machine
from benchmarks.models import DEFAULT_MODEL
from framesource.settings import DEFAULT_SEED


def score(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    """Probabilities (N x classes) for uint8 NHWC RGB images, preprocessed as the spec says."""
    inputs = np.ascontiguousarray(
        (images.astype(np.float32) * np.float32(1.0 / 255.0)).transpose(0, 3, 1, 2)
    )
    name = session.get_inputs()[0].name
    chunks = [session.run(None, {name: inputs[i : i + 256]})[0] for i in range(0, len(inputs), 256)]
    return np.concatenate(chunks)


def drifts(strength: float) -> list[tuple[str, synthdata.Drift]]:
    rows = [("none", synthdata.NO_DRIFT)]
    rows += [(kind, synthdata.Drift.only(kind, strength)) for kind in synthdata.DRIFT_KINDS]
    half = {kind: strength / 2 for kind in synthdata.DRIFT_KINDS}
    rows.append(("all at half", synthdata.Drift(**half)))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=1000, help="frames per drift (default 1000)")
    p.add_argument("--strength", type=float, default=1.0, help="drift strength 0..1 (default 1)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model (the default)")
    args = p.parse_args(argv)
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    print(describe_machine())
    print(f"\nmodel {args.model.name}, {args.frames} frames per row, seed {DEFAULT_SEED}\n")
    print(f"| drift (strength {args.strength:g}) | accuracy | mean top-1 confidence | frames/s |")
    print("|---|---|---|---|")
    for name, drift in drifts(args.strength):
        started = time.perf_counter()
        images, labels = synthdata.make_camera_stream(args.frames, DEFAULT_SEED, drift)
        probabilities = score(session, images)
        elapsed = time.perf_counter() - started
        accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
        confidence = float(np.mean(probabilities.max(axis=1)))
        rate = args.frames / elapsed
        print(f"| {name} | {accuracy:.1%} | {confidence:.3f} | {rate:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
