"""A captured frame as it is stored: its original bytes and a JSON sidecar, side by side.

    <device>/<YYYY-MM-DD>/<HHMMSS.mmm>_<policy>_<frame id>.<jpg|png|bmp|bin>
    <device>/<YYYY-MM-DD>/<HHMMSS.mmm>_<policy>_<frame id>.json

The names sort by device, day and time, so a reader lists one device's day with one prefix;
the sidecar is written after the frame, so a sidecar always has its frame. Raw pixel buffers
(``pixel_format`` messages) are stored as PNG, the one case where the bytes are not the
original ones: a buffer without its layout would be unreadable.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from classifier.frames import FrameRequest, PixelFormat
from classifier.predictions import Prediction

CAPTURE_SCHEMA = "edge-classifier/capture/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAGIC = (
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"BM", "bmp", "image/bmp"),
)


@dataclass(frozen=True)
class CaptureRecord:
    policy: str
    frame_blob: str
    sidecar_blob: str
    content_type: str
    frame: bytes
    sidecar: bytes

    @property
    def size_bytes(self) -> int:
        return len(self.frame) + len(self.sidecar)


def frame_bytes(request: FrameRequest) -> tuple[bytes, str, str]:
    """(bytes, extension, content type) of the frame as stored; raw buffers become PNG."""
    if request.raw is None:
        for magic, extension, content_type in _MAGIC:
            if request.payload.startswith(magic):
                return request.payload, extension, content_type
        return request.payload, "bin", "application/octet-stream"
    layout = request.raw
    channels = layout.pixel_format.channels
    flat = np.frombuffer(request.payload, np.uint8)
    pixels: np.ndarray = flat[: layout.width * layout.height * channels].reshape(
        layout.height, layout.width, channels
    )
    if layout.pixel_format is PixelFormat.RGB24:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError("PNG encoding of a raw frame failed")
    return encoded.tobytes(), "png", "image/png"


def build_record(
    prediction: Prediction, request: FrameRequest, policy: str, device_id: str, module_id: str
) -> CaptureRecord:
    """Encodes one capture; runs off the event loop (a raw frame is encoded here)."""
    data, extension, content_type = frame_bytes(request)
    now = datetime.now(UTC)
    meta = prediction.meta
    frame_id = _UNSAFE.sub("-", meta.frame_id)[:64] or "frame"
    # A short digest of the whole id keeps names unique when long ids share a prefix.
    suffix = hashlib.sha256(meta.frame_id.encode()).hexdigest()[:8]
    clock = f"{now:%H%M%S}.{now.microsecond // 1000:03d}"
    stem = f"{_UNSAFE.sub('-', device_id)}/{now:%Y-%m-%d}/{clock}_{policy}_{frame_id}-{suffix}"
    frame_blob = f"{stem}.{extension}"
    model = prediction.model
    sidecar: dict[str, Any] = {
        "schema": CAPTURE_SCHEMA,
        "device": device_id,
        "module": module_id,
        "policy": policy,
        "captured_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "frame": {
            "id": meta.frame_id,
            "source": meta.source_id,
            "capture_time": meta.capture_time,
            "name": meta.name,
            "width": prediction.width,
            "height": prediction.height,
            "properties": dict(meta.passthrough),
            "blob": frame_blob,
            "content_type": content_type,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "top_k": [{"label": label, "confidence": round(p, 6)} for label, p in prediction.labels],
        "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
    }
    body = json.dumps(sidecar, separators=(",", ":")).encode()
    return CaptureRecord(policy, frame_blob, f"{stem}.json", content_type, data, body)
