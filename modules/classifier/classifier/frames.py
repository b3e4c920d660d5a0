"""Frames as the pipeline sees them: data types only (``intake`` reads them from messages).

A message on the ``frames`` input becomes one or more ``FrameRequest``s (the JSON scoring
contract carries several images in one message). A request holds the still-encoded payload:
decoding happens off the event loop, in the decode stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from classifier.errors import FrameError


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
