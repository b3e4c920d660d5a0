"""Splits a message on the ``frames`` input into frame requests, by content type and by sniffing.

Accepted:
- an encoded image (JPEG, PNG, BMP), whatever image/* content type or none is given;
- a raw pixel buffer: ``pixel_format`` (rgb24, bgr24, gray8), ``width`` and ``height`` properties;
- the seed's scoring contract, a JSON object ``{"<name>": "<base64 image>", ...}``: every entry
  becomes its own frame, named in the prediction (at most ``max_entries`` of them).

Cheap checks only: decoding happens later, off the event loop. A problem that concerns the
whole message raises ``FrameError``; one bad entry of a JSON request is carried as a rejected
request, so the other entries are still scored. Nothing else may escape: the pipeline turns
any other exception into ``internal_error``, but every input class known to break a parser
has its own code here.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import time
from collections.abc import Collection
from dataclasses import replace

from classifier.bounded_text import MAX_ID_CHARS, MAX_VALUE_CHARS, bounded_text
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta, FrameRequest, frame_meta_from, raw_layout_from
from classifier.image_header import sniff_format
from edge_module.hub import InboundMessage

RAW_TYPES = {"application/octet-stream", "image/x-raw"}
JSON_TYPES = {"application/json", "text/json"}
# Content encodings that say "these bytes are as they are": cameras label binary frames
# "utf-8" as often as not (the SDK samples do), so text charsets pass too.
_IDENTITY_ENCODINGS = {"identity", "binary", "7bit", "8bit", "none"}
DEFAULT_MAX_ENTRIES = 32
_UTF8_BOM = b"\xef\xbb\xbf"


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
    content_type = _media_type(message.content_type)
    charset = _charset(message.content_encoding)
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
                f"raw pixel_format given with content type {_shown(content_type)}; "
                "use application/octet-stream",
            )
        return [FrameRequest(meta, body, raw=raw, received_s=now)]
    if _is_json_type(content_type) or (not content_type and _looks_like_json(body)):
        return _json_requests(body, charset, meta, now, max_entries)
    if content_type and not content_type.startswith("image/") and content_type not in RAW_TYPES:
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_CONTENT_TYPE,
            f"content type {_shown(content_type)} is not an image, raw buffer or JSON "
            "scoring request",
        )
    # Any image/* type lets the bytes decide (cameras label everything image/jpeg, and
    # image/webp bytes are refused by format in decode); a JSON body sent as octet-stream
    # is still a scoring request.
    if sniff_format(body) is None and _looks_like_json(body):
        return _json_requests(body, charset, meta, now, max_entries)
    return [FrameRequest(meta, body, received_s=now)]


def _shown(value: str) -> str:
    return repr(bounded_text(value, 60))


def _media_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_type(media_type: str) -> bool:
    return media_type in JSON_TYPES or media_type.endswith("+json")


def _looks_like_json(body: bytes) -> bool:
    return body.removeprefix(_UTF8_BOM).lstrip()[:1] == b"{"


def _charset(content_encoding: str | None) -> str | None:
    """The text encoding a JSON body is in, if the message names one; refuses compression.

    A gzip'd frame labelled ``content_encoding=gzip`` would otherwise reach the decoder as
    unrecognisable bytes; it is refused for what it is instead.
    """
    name = (content_encoding or "").strip().lower()
    if not name or name in _IDENTITY_ENCODINGS:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    # codecs also knows base64, zlib and bz2 as "encodings"; only text encodings qualify.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_CONTENT_ENCODING,
            f"content encoding {_shown(name)} is not supported: send the bytes uncompressed",
        )
    # A BOM is legal at the start of UTF-8 JSON text but json.loads refuses it in a str.
    return "utf-8-sig" if info.name == "utf-8" else info.name


class _Entries(list[tuple[str, object]]):
    """A JSON object's members in order, duplicates kept (``json`` keeps only the last)."""


def _json_requests(
    body: bytes, charset: str | None, meta: FrameMeta, now: float, max_entries: int
) -> list[FrameRequest]:
    doc = _parse_json(body, charset)
    if not isinstance(doc, _Entries) or not doc:
        raise FrameError(
            FrameErrorCode.MALFORMED_JSON,
            'expected a non-empty JSON object {"<name>": "<base64 image>", ...}',
        )
    if len(doc) > max_entries:
        raise FrameError(
            FrameErrorCode.TOO_MANY_ENTRIES,
            f"the request has {len(doc)} entries; the limit is {max_entries} per message",
        )
    names = [name for name, _ in doc]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise FrameError(
            FrameErrorCode.MALFORMED_JSON,
            f"entry name {_shown(duplicate)} appears more than once",
        )
    requests = []
    for name, value in doc:
        shown = bounded_text(name, MAX_VALUE_CHARS)
        entry_id = bounded_text(f"{meta.frame_id}/{name}", MAX_ID_CHARS)
        entry_meta = replace(meta, frame_id=entry_id, name=shown)
        request = FrameRequest(entry_meta, b"", received_s=now)
        try:
            request.payload = _b64_image(shown, value)
        except FrameError as e:
            request.rejected = e
        requests.append(request)
    return requests


def _parse_json(body: bytes, charset: str | None) -> object:
    try:
        text = body.decode(charset) if charset else body
        return json.loads(text, object_pairs_hook=_Entries)
    except RecursionError:
        # Deep nesting ([[[[...]]]]) exhausts the parser's stack; nothing nested is valid here.
        raise FrameError(FrameErrorCode.MALFORMED_JSON, "body is nested too deeply") from None
    except (ValueError, UnicodeError) as e:
        raise FrameError(
            FrameErrorCode.MALFORMED_JSON, f"body is not valid JSON: {bounded_text(e, 120)}"
        ) from e


def _b64_image(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        kind = "object" if isinstance(value, _Entries) else type(value).__name__
        raise FrameError(
            FrameErrorCode.BAD_BASE64,
            f"entry {_shown(name)} must be a base64 string, not {kind}",
        )
    # Data URLs ("data:image/png;base64,....") are what browsers and many tools produce.
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FrameError(
            FrameErrorCode.BAD_BASE64, f"entry {_shown(name)} is not valid base64: {e}"
        ) from e
