"""What the synthetic camera sends: JPEG frames of the default model's classes, with truth.

Frame ``i`` depends only on ``(seed, i)`` (as in the synthdata splits), so anyone holding the
seed can regenerate a frame and its label; the label also travels as the ``truth`` property
so a demo can score predictions without regenerating anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2

import synthdata

# Neither the training nor the held-out split: what the camera shows is new to the model.
DEFAULT_SEED = 31_415_926


@dataclass(frozen=True)
class CameraFrame:
    index: int
    jpeg: bytes
    truth: str
    properties: dict[str, str]
    message_id: str


def make_frame(
    source_id: str, seed: int, index: int, width: int, height: int, quality: int
) -> CameraFrame:
    class_id = index % synthdata.NUM_CLASSES
    rgb = synthdata.render(class_id, synthdata.sample_rng(seed, index), width, height)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    truth = synthdata.LABELS[class_id]
    properties = {
        "source_id": source_id,
        "capture_time": str(int(time.time() * 1000)),
        "truth": truth,
        "seq": str(index),
    }
    return CameraFrame(index, encoded.tobytes(), truth, properties, f"{source_id}-{index}")
