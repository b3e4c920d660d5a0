"""Turns one frame's bytes into pixels, refusing anything unsafe or broken with a specific code.

Runs in the decode stage's worker threads: both decoders release the GIL while decoding.

JPEGs are decoded by libjpeg-turbo directly (simplejpeg) in strict mode, the same library
and mode that read their header (``image_header``): a truncated scan with an end marker
appended, which OpenCV decodes as half-grey pixels with only a warning, is refused, and the
size checked is the size decoded. PNG and BMP go to OpenCV, whose own pixel limit is capped
to ``MAX_PIXELS`` before it is imported (``opencv_limits``).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import simplejpeg

from classifier.bounded_text import reason_text
from classifier.decode_limits import FrameLimits
from classifier.errors import FrameError, FrameErrorCode
from classifier.exif_orientation import exif_orientation, upright
from classifier.frames import DecodedImage, FrameRequest, PixelFormat, RawLayout
from classifier.image_header import ImageFormat, ImageHeader, read_header
from classifier.model_spec import ChannelOrder, Preprocessing, ResizeMode

_JPEG_COLOURSPACE = {ChannelOrder.RGB: "RGB", ChannelOrder.BGR: "BGR", ChannelOrder.GRAY: "GRAY"}


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
    if header.format is ImageFormat.JPEG:
        return _decode_jpeg(data, header, target)
    gray = target.channel_order is ChannelOrder.GRAY
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error as e:
        # OpenCV's own size check (capped to MAX_PIXELS) firing means the data held more
        # pixels than the header said: a bomb that got past the header check.
        code = (
            FrameErrorCode.DECOMPRESSION_BOMB
            if "validateInputImageSize" in str(e)
            else FrameErrorCode.CORRUPT_IMAGE
        )
        raise FrameError(code, f"{header.format}: {reason_text(str(e).strip())}") from e
    if decoded is None or decoded.size == 0:
        raise FrameError(FrameErrorCode.CORRUPT_IMAGE, f"{header.format} data could not be decoded")
    pixels = np.asarray(decoded, dtype=np.uint8)
    return DecodedImage(pixels, "GRAY" if gray else "BGR", header.width, header.height)


def _decode_jpeg(data: bytes, header: ImageHeader, target: Preprocessing) -> DecodedImage:
    factor = reduction_factor(header.width, header.height, target)
    try:
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace=_JPEG_COLOURSPACE[target.channel_order],
            # The smallest DCT scale whose output is still this large is exactly 1/factor.
            min_height=-(-header.height // factor),
            min_width=-(-header.width // factor),
            strict=True,
        )
    except ValueError as e:
        why = reason_text(str(e))
        if "premature end" in why.lower():
            why = f"truncated: {why}"
        raise FrameError(FrameErrorCode.CORRUPT_IMAGE, f"jpeg: {why}") from e
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    order = _JPEG_COLOURSPACE[target.channel_order]
    return DecodedImage(upright(pixels, exif_orientation(data)), order, header.width, header.height)
