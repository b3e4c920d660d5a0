"""What every source yields, and how a frame becomes JPEG bytes.

A source yields ``SourceFrame``s lazily: decoding into pixels and encoding happen only for
the frames the rate gate keeps (``encode``), so skipping frames of a 30 fps camera to send 5
costs a decode each, not a decode, a colour conversion and a JPEG encode.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import simplejpeg

from framesource.errors import FrameSourceError

RgbArray = npt.NDArray[np.uint8]


class SourceError(FrameSourceError):
    """The source cannot be opened or read (a camera that dropped, a missing file)."""


@dataclass(frozen=True)
class EncodedFrame:
    jpeg: bytes
    width: int
    height: int


class SourceFrame(Protocol):
    index: int  # in the source's own order, from 0 at each opening
    timestamp_s: float  # presentation time for files; arrival (monotonic) time for streams
    pts_ms: int | None  # the frame's time in a file, for the message's properties
    truth: str | None  # the ground truth of a synthetic frame

    def encode(self, width: int, height: int, quality: int) -> EncodedFrame:
        """JPEG bytes at ``width`` x ``height`` (0 keeps the source's; one 0 keeps the aspect)."""
        ...


class FrameReader(Protocol):
    def frames(self) -> Iterator[SourceFrame]:
        """Blocks for each frame; ends at the end of a file; ``SourceError`` on failure."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the source turned out to be (codec, size, rate), for the reported properties."""
        ...

    def close(self) -> None: ...


def output_size(source_w: int, source_h: int, width: int, height: int) -> tuple[int, int]:
    """The size to encode at: as asked, the source's, or one side asked and the aspect kept
    (even numbers: chroma subsampling halves each side)."""
    if width and height:
        return width, height
    if width:
        return width, max(2, round(source_h * width / source_w / 2) * 2)
    if height:
        return max(2, round(source_w * height / source_h / 2) * 2), height
    return source_w, source_h


def encode_rgb(pixels: RgbArray, quality: int) -> EncodedFrame:
    jpeg = simplejpeg.encode_jpeg(
        np.ascontiguousarray(pixels), quality=quality, colorspace="RGB", colorsubsampling="420"
    )
    height, width = pixels.shape[:2]
    return EncodedFrame(bytes(jpeg), width, height)
