"""Splits a message on the ``frames`` input into frame requests, by content type and by sniffing.

Accepted:
- an encoded image (JPEG, PNG, BMP), whatever image/* content type or none is given;
- a raw pixel buffer: ``pixel_format`` (rgb24, bgr24, gray8), ``width`` and ``height`` properties;
- the seed's scoring contract, a JSON object ``{"<name>": "<base64 image>", ...}``: every entry
  becomes its own frame, named in the prediction.

Cheap checks only: decoding happens later, off the event loop. A problem that concerns the
whole message raises ``FrameError``; one bad entry of a JSON request is carried as a rejected
request, so the other entries are still scored.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Collection
from dataclasses import replace

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta, FrameRequest, frame_meta_from, raw_layout_from
from classifier.hub import InboundMessage
from classifier.image_header import sniff_format

IMAGE_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/bmp", "image/x-ms-bmp"}
RAW_TYPES = {"application/octet-stream", "image/x-raw"}
JSON_TYPES = {"application/json", "text/json"}


def message_meta(message: InboundMessage, passthrough: Collection[str] = ()) -> FrameMeta:
    return frame_meta_from(
        message.message_id, message.correlation_id, message.properties, passthrough
    )


def frame_requests(
    message: InboundMessage, max_frame_bytes: int, passthrough: Collection[str] = ()
) -> list[FrameRequest]:
    now = time.monotonic()
    meta = message_meta(message, passthrough)
    content_type = _media_type(message.content_type)
    body = message.body
    if not body:
        raise FrameError(FrameErrorCode.EMPTY, "message body is empty")
    if len(body) > max_frame_bytes:
        raise FrameError(
            FrameErrorCode.TOO_LARGE,
            f"message is {len(body)} bytes; the limit is {max_frame_bytes}",
        )
    raw = raw_layout_from(message.properties)
    if raw is not None:
        if content_type and content_type not in RAW_TYPES:
            raise FrameError(
                FrameErrorCode.UNSUPPORTED_CONTENT_TYPE,
                f"raw pixel_format given with content type {content_type!r}; "
                "use application/octet-stream",
            )
        return [FrameRequest(meta, body, raw=raw, received_s=now)]
    if content_type in JSON_TYPES or (not content_type and body.lstrip()[:1] == b"{"):
        return _json_requests(body, meta, now)
    if content_type and content_type not in IMAGE_TYPES | RAW_TYPES:
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_CONTENT_TYPE,
            f"content type {content_type!r} is not an image, raw buffer or JSON scoring request",
        )
    # An image/* type that disagrees with the bytes is common (cameras label everything
    # image/jpeg); the bytes decide, and bytes that are no image at all are refused in decode.
    if sniff_format(body) is None and body.lstrip()[:1] == b"{":
        return _json_requests(body, meta, now)
    return [FrameRequest(meta, body, received_s=now)]


def _media_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _json_requests(body: bytes, meta: FrameMeta, now: float) -> list[FrameRequest]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise FrameError(FrameErrorCode.MALFORMED_JSON, f"body is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not doc:
        raise FrameError(
            FrameErrorCode.MALFORMED_JSON,
            'expected a non-empty JSON object {"<name>": "<base64 image>", ...}',
        )
    requests = []
    for name, value in doc.items():
        entry_meta = replace(meta, frame_id=f"{meta.frame_id}/{name}", name=name)
        request = FrameRequest(entry_meta, b"", received_s=now)
        try:
            request.payload = _b64_image(name, value)
        except FrameError as e:
            request.rejected = e
        requests.append(request)
    return requests


def _b64_image(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise FrameError(
            FrameErrorCode.BAD_BASE64,
            f"entry {name!r} must be a base64 string, not {type(value).__name__}",
        )
    # Data URLs ("data:image/png;base64,....") are what browsers and many tools produce.
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FrameError(
            FrameErrorCode.BAD_BASE64, f"entry {name!r} is not valid base64: {e}"
        ) from e
