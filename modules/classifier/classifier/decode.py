"""Turns one frame's bytes into pixels, refusing anything unsafe or broken with a specific code.

Runs in the decode stage's worker threads: OpenCV releases the GIL while decoding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import DecodedImage, FrameRequest, PixelFormat, RawLayout
from classifier.image_header import ImageFormat, read_header
from classifier.model_spec import ChannelOrder, Preprocessing, ResizeMode


@dataclass(frozen=True)
class FrameLimits:
    # edgeHub caps messages at 256 KiB, but frames may come from other paths (files, tests).
    max_frame_bytes: int = 16 * 1024 * 1024
    # Above this many pixels a frame is treated as a decompression bomb.
    max_pixels: int = 40_000_000
    max_side: int = 16_384


_REDUCED_COLOR = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_REDUCED_GRAY = {
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def decode_frame(request: FrameRequest, limits: FrameLimits, target: Preprocessing) -> DecodedImage:
    started = time.perf_counter()
    data = request.payload
    if not data:
        raise FrameError(FrameErrorCode.EMPTY, "frame has no bytes")
    if len(data) > limits.max_frame_bytes:
        raise FrameError(
            FrameErrorCode.TOO_LARGE,
            f"frame is {len(data)} bytes; the limit is {limits.max_frame_bytes}",
        )
    if request.raw is not None:
        image = _decode_raw(data, request.raw, limits)
    else:
        image = _decode_encoded(data, limits, target)
    image.timings_ms["decode"] = (time.perf_counter() - started) * 1000.0
    return image


def _check_size(width: int, height: int, limits: FrameLimits) -> None:
    if width > limits.max_side or height > limits.max_side:
        raise FrameError(
            FrameErrorCode.DIMENSIONS,
            f"{width}x{height} exceeds the maximum side of {limits.max_side} pixels",
        )
    if width * height > limits.max_pixels:
        raise FrameError(
            FrameErrorCode.DECOMPRESSION_BOMB,
            f"{width}x{height} = {width * height} pixels exceeds the limit of {limits.max_pixels}",
        )


def _decode_raw(data: bytes, layout: RawLayout, limits: FrameLimits) -> DecodedImage:
    _check_size(layout.width, layout.height, limits)
    channels = layout.pixel_format.channels
    expected = layout.width * layout.height * channels
    if len(data) != expected:
        raise FrameError(
            FrameErrorCode.RAW_SIZE_MISMATCH,
            f"{layout.pixel_format} {layout.width}x{layout.height} needs {expected} bytes, "
            f"got {len(data)}",
        )
    shape = (layout.height, layout.width) if channels == 1 else (layout.height, layout.width, 3)
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    order = {PixelFormat.RGB24: "RGB", PixelFormat.BGR24: "BGR", PixelFormat.GRAY8: "GRAY"}
    return DecodedImage(pixels, order[layout.pixel_format], layout.width, layout.height)


def reduction_factor(width: int, height: int, target: Preprocessing) -> int:
    """The largest libjpeg DCT scale-down (1, 2, 4 or 8) that keeps enough pixels for the model.

    Scaling in the DCT costs nothing and averages like an area resize, so a 640x480 frame for
    a 32x32 model is decoded at 80x60 directly instead of decoded whole and thrown away.
    """
    sx = target.width / width
    sy = target.height / height
    needed = min(sx, sy) if target.resize is ResizeMode.LETTERBOX else max(sx, sy)
    for factor in (8, 4, 2):
        if needed * factor <= 1.0:
            return factor
    return 1


def _decode_encoded(data: bytes, limits: FrameLimits, target: Preprocessing) -> DecodedImage:
    header = read_header(data)
    _check_size(header.width, header.height, limits)
    gray = target.channel_order is ChannelOrder.GRAY
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    if header.format is ImageFormat.JPEG:
        factor = reduction_factor(header.width, header.height, target)
        if factor > 1:
            flags = (_REDUCED_GRAY if gray else _REDUCED_COLOR)[factor]
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        decoded = cv2.imdecode(buffer, flags)
    except cv2.error as e:
        raise FrameError(FrameErrorCode.CORRUPT_IMAGE, f"{header.format}: {e}") from e
    if decoded is None or decoded.size == 0:
        raise FrameError(FrameErrorCode.CORRUPT_IMAGE, f"{header.format} data could not be decoded")
    pixels = np.asarray(decoded, dtype=np.uint8)
    return DecodedImage(pixels, "GRAY" if gray else "BGR", header.width, header.height)
