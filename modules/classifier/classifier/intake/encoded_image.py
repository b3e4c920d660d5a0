"""An encoded image (JPEG, PNG, BMP), whatever image/* content type or none is given.

Only the content type is checked here: the bytes' format and size are read from the header
in the decode stage, off the event loop.
"""

from __future__ import annotations

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta, FrameRequest
from classifier.image_header import sniff_format
from classifier.intake.envelope import shown
from classifier.intake.raw_buffer import RAW_TYPES


def require_image_type(content_type: str) -> None:
    # Any image/* type lets the bytes decide (cameras label everything image/jpeg, and
    # image/webp bytes are refused by format in decode).
    if content_type and not content_type.startswith("image/") and content_type not in RAW_TYPES:
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_CONTENT_TYPE,
            f"content type {shown(content_type)} is not an image, raw buffer or JSON "
            "scoring request",
        )


def sniffs_as_image(body: bytes) -> bool:
    return sniff_format(body) is not None


def encoded_image_request(meta: FrameMeta, body: bytes, now: float) -> FrameRequest:
    return FrameRequest(meta, body, received_s=now)
