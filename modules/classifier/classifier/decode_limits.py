"""The size limits every frame is checked against (``MAX_FRAME_BYTES``, ``MAX_PIXELS``,
``MAX_SIDE``). Apart from ``decode`` because OpenCV must learn them before it is imported
(``opencv_limits``), and this module imports nothing that loads it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameLimits:
    # edgeHub caps messages at 256 KiB, but frames may come from other paths (files, tests).
    max_frame_bytes: int = 16 * 1024 * 1024
    # Above this many pixels a frame is treated as a decompression bomb.
    max_pixels: int = 40_000_000
    max_side: int = 16_384
