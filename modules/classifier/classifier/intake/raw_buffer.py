"""A raw pixel buffer: ``pixel_format`` (rgb24, bgr24, gray8), ``width`` and ``height`` properties."""

from __future__ import annotations

from collections.abc import Mapping

from classifier.bounded_text import bounded_text
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta, FrameRequest, PixelFormat, RawLayout
from classifier.intake.envelope import shown

RAW_TYPES = {"application/octet-stream", "image/x-raw"}
_PIXEL_FORMAT_KEYS = ("pixel_format", "pixelFormat")


def raw_layout_from(properties: Mapping[str, str]) -> RawLayout | None:
    """The raw-buffer layout if the properties describe one, else None (an encoded image)."""
    # Presence decides, not truthiness: an empty pixel_format is a raw buffer in a format we
    # do not support, not an encoded image.
    key = next((k for k in _PIXEL_FORMAT_KEYS if k in properties), None)
    if key is None:
        return None
    fmt = properties[key]
    try:
        pixel_format = PixelFormat(str(fmt).strip().lower())
    except ValueError:
        supported = ", ".join(p.value for p in PixelFormat)
        text = bounded_text(fmt, 40)
        raise FrameError(
            FrameErrorCode.RAW_FORMAT, f"pixel_format {text!r} is not one of {supported}"
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


def raw_buffer_request(
    meta: FrameMeta, body: bytes, layout: RawLayout, content_type: str, now: float
) -> FrameRequest:
    if content_type and content_type not in RAW_TYPES:
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_CONTENT_TYPE,
            f"raw pixel_format given with content type {shown(content_type)}; "
            "use application/octet-stream",
        )
    return FrameRequest(meta, body, raw=layout, received_s=now)


def _pixel_count(value: object) -> int | None:
    # int() alone accepts "1_000", "٣" (Arabic-Indic digits) and 4,300-digit numbers, and
    # raises on longer ones; a size is a short run of ASCII digits or it is not a size.
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 9 or not text.isascii() or not text.isdigit():
        return None
    return int(text)
