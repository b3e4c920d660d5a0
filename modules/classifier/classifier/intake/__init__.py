"""Reads a message on the ``frames`` input, in one pass, into frame requests.

Accepted, one module each:
- a raw pixel buffer (``raw_buffer``): ``pixel_format``, ``width`` and ``height`` properties;
- the seed's JSON scoring request (``json_request``): every entry its own frame;
- an encoded image (``encoded_image``): JPEG, PNG, BMP, by content type or by sniffing.

Cheap checks only: decoding happens later, off the event loop. A problem that concerns the
whole message raises ``FrameError``; one bad entry of a JSON request is carried as a rejected
request, so the other entries are still scored. Nothing else may escape: the pipeline turns
any other exception into ``internal_error``, but every input class known to break a parser
has its own code here.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from classifier.frames import FrameMeta, FrameRequest
from classifier.intake.encoded_image import (
    encoded_image_request,
    require_image_type,
    sniffs_as_image,
)
from classifier.intake.envelope import checked_body, media_type, text_charset
from classifier.intake.json_request import (
    DEFAULT_MAX_ENTRIES,
    is_json_type,
    json_requests,
    looks_like_json,
)
from classifier.intake.message_meta import frame_meta_from
from classifier.intake.raw_buffer import raw_buffer_request, raw_layout_from
from edge_module.hub import InboundMessage

__all__ = ["DEFAULT_MAX_ENTRIES", "frame_requests", "message_meta"]


def message_meta(message: InboundMessage, passthrough: Collection[str] = ()) -> FrameMeta:
    return frame_meta_from(
        message.message_id, message.correlation_id, message.properties, passthrough
    )


def frame_requests(
    message: InboundMessage,
    max_frame_bytes: int,
    passthrough: Collection[str] = (),
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[FrameRequest]:
    now = time.monotonic()
    meta = message_meta(message, passthrough)
    content_type = media_type(message.content_type)
    charset = text_charset(message.content_encoding)
    body = checked_body(message.body, max_frame_bytes)
    # The properties decide first: a raw buffer's bytes cannot be sniffed.
    layout = raw_layout_from(message.properties)
    if layout is not None:
        return [raw_buffer_request(meta, body, layout, content_type, now)]
    if is_json_type(content_type) or (not content_type and looks_like_json(body)):
        return json_requests(body, charset, meta, now, max_entries)
    require_image_type(content_type)
    # A JSON body sent as image/* or octet-stream is still a scoring request.
    if not sniffs_as_image(body) and looks_like_json(body):
        return json_requests(body, charset, meta, now, max_entries)
    return [encoded_image_request(meta, body, now)]
