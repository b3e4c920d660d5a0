"""Frames as the pipeline sees them, and how a message's properties describe one.

A message on the ``frames`` input becomes one or more ``FrameRequest``s (the JSON scoring
contract carries several images in one message). A request holds the still-encoded payload:
decoding happens off the event loop, in the decode stage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from classifier.bounded_text import MAX_ID_CHARS, MAX_VALUE_CHARS, bounded_text
from classifier.errors import FrameError, FrameErrorCode


class PixelFormat(StrEnum):
    RGB24 = "rgb24"
    BGR24 = "bgr24"
    GRAY8 = "gray8"

    @property
    def channels(self) -> int:
        return 1 if self is PixelFormat.GRAY8 else 3


@dataclass(frozen=True)
class RawLayout:
    """Shape of an uncompressed pixel buffer, given by message properties."""

    pixel_format: PixelFormat
    width: int
    height: int


@dataclass(frozen=True)
class FrameMeta:
    frame_id: str
    source_id: str | None = None
    capture_time: str | None = None
    # The key of this image in a JSON scoring request, when it came from one.
    name: str | None = None
    # Input properties echoed on the outputs (PASSTHROUGH_PROPERTIES), e.g. a lot number.
    passthrough: Mapping[str, str] = field(default_factory=dict)


@dataclass
class FrameRequest:
    meta: FrameMeta
    payload: bytes
    # Encoded images are sniffed; raw buffers need their layout.
    raw: RawLayout | None = None
    received_s: float = 0.0  # time.monotonic() at arrival
    # Set when the frame was refused before decoding (e.g. a bad base64 entry in a JSON
    # request): it travels through the pipeline only to be reported in order.
    rejected: FrameError | None = None


@dataclass
class DecodedImage:
    """Pixels as decoded: OpenCV's native BGR, RGB for raw rgb24 buffers, or single-channel."""

    pixels: npt.NDArray[np.uint8]
    channel_order: str  # "BGR", "RGB" or "GRAY"
    width: int  # of the original frame, before any reduced-scale decoding
    height: int
    timings_ms: dict[str, float] = field(default_factory=dict)


_sequence = itertools.count(1)

# Property names upstream modules commonly use; the first one present wins.
SOURCE_KEYS = ("source_id", "camera_id", "cameraId", "source", "$.cmid")
CAPTURE_TIME_KEYS = ("capture_time", "captureTime", "timestamp")


def frame_meta_from(
    message_id: str | None,
    correlation_id: str | None,
    properties: Mapping[str, str],
    passthrough_keys: Collection[str] = (),
) -> FrameMeta:
    """Never raises: every field is cleaned (``bounded_text``) or dropped when unreadable."""
    source_raw = next((properties[k] for k in SOURCE_KEYS if properties.get(k)), None)
    source = None if source_raw is None else bounded_text(source_raw, MAX_VALUE_CHARS)
    frame_id = message_id or correlation_id or f"{source or 'frame'}-{next(_sequence)}"
    raw_time = next((properties[k] for k in CAPTURE_TIME_KEYS if properties.get(k)), None)
    echoed = {
        k: bounded_text(properties[k], MAX_VALUE_CHARS) for k in passthrough_keys if k in properties
    }
    return FrameMeta(
        frame_id=bounded_text(frame_id, MAX_ID_CHARS),
        source_id=source,
        capture_time=normalise_time(raw_time),
        passthrough=echoed,
    )


# The longest ISO 8601 text worth parsing ("2024-05-01T10:00:00.000000+01:00" is 32).
_MAX_TIME_CHARS = 40


def normalise_time(value: object) -> str | None:
    """ISO 8601 in UTC from ISO text or epoch seconds/milliseconds; None if absent or unreadable.

    An unreadable capture time does not reject the frame: it is metadata, not pixels. Never
    raises: a camera with an unset clock sends year 1 with a +01:00 offset, and converting
    that to UTC overflows ``datetime``; so does year 9999 with a negative offset.
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_TIME_CHARS:
        return None
    try:
        return _iso_utc(value)
    except (ValueError, OverflowError, OSError):
        return None


def _iso_utc(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if not math.isfinite(number) or number < 0:
        return None
    # Epoch values above 1e11 cannot be seconds (year 5138): read them as milliseconds.
    seconds = number / 1000.0 if number > 1e11 else number
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_layout_from(properties: Mapping[str, str]) -> RawLayout | None:
    """The raw-buffer layout if the properties describe one, else None (an encoded image)."""
    fmt = properties.get("pixel_format") or properties.get("pixelFormat")
    if fmt is None:
        return None
    try:
        pixel_format = PixelFormat(str(fmt).strip().lower())
    except ValueError:
        supported = ", ".join(p.value for p in PixelFormat)
        shown = bounded_text(fmt, 40)
        raise FrameError(
            FrameErrorCode.RAW_FORMAT, f"pixel_format {shown!r} is not one of {supported}"
        ) from None
    width = _pixel_count(properties.get("width"))
    height = _pixel_count(properties.get("height"))
    if width is None or height is None:
        raise FrameError(
            FrameErrorCode.DIMENSIONS,
            "raw frames need 'width' and 'height' properties in plain decimal digits",
        )
    if width <= 0 or height <= 0:
        raise FrameError(FrameErrorCode.DIMENSIONS, f"raw frame size {width}x{height}")
    return RawLayout(pixel_format, width, height)


def _pixel_count(value: object) -> int | None:
    # int() alone accepts "1_000", "٣" (Arabic-Indic digits) and 4,300-digit numbers, and
    # raises on longer ones; a size is a short run of ASCII digits or it is not a size.
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 9 or not text.isascii() or not text.isdigit():
        return None
    return int(text)
