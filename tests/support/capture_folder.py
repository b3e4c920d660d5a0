"""A dataset folder as ``dataset pull`` leaves it, made without a device: synthetic camera
frames with sidecars written by the classifier's own capture code (``build_record``)."""

from __future__ import annotations

from pathlib import Path

import synthdata
from classifier.frames import FrameMeta, FrameRequest
from classifier.predictions import ModelInfo, Prediction
from classifier.quality.records import build_record
from framesource.sources.synthetic import make_frame

MODEL = ModelInfo("seed-cnn-synth10", "1.0.0", "7" * 64, "CPUExecutionProvider")


def write_captures(
    folder: Path, count: int, drift: synthdata.Drift = synthdata.NO_DRIFT, seed: int = 5
) -> list[str]:
    """``count`` captures whose top-1 is the truth for even frames and wrong for odd ones;
    returns their truths in order."""
    truths = []
    for i in range(count):
        frame = make_frame("cam", seed, i, 96, 72, 85, drift)
        wrong = synthdata.LABELS[(i + 1) % synthdata.NUM_CLASSES]
        top1 = frame.truth if i % 2 == 0 else wrong
        labels = ((top1, 0.6), ("ring", 0.3), ("cross", 0.1))
        meta = FrameMeta(frame.message_id, "cam", None, None, {"truth": frame.truth})
        request = FrameRequest(meta, frame.jpeg)
        prediction = Prediction(meta, labels, MODEL, {"total": 1.0}, 96, 72, request)
        record = build_record(prediction, request, "low_confidence", "dock-7", "classifier")
        (folder / record.frame_blob).parent.mkdir(parents=True, exist_ok=True)
        (folder / record.frame_blob).write_bytes(record.frame)
        (folder / record.sidecar_blob).write_bytes(record.sidecar)
        truths.append(frame.truth)
    return truths
