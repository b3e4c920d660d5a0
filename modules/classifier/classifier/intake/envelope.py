"""What a message says about its body before the body is read: media type and text encoding."""

from __future__ import annotations

import codecs

from classifier.bounded_text import bounded_text
from classifier.errors import FrameError, FrameErrorCode

# Content encodings that say "these bytes are as they are": cameras label binary frames
# "utf-8" as often as not (the SDK samples do), so text charsets pass too.
_IDENTITY_ENCODINGS = {"identity", "binary", "7bit", "8bit", "none"}


def shown(value: str) -> str:
    """A sender's text quoted in a reason, short enough for a log line."""
    return repr(bounded_text(value, 60))


def media_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def text_charset(content_encoding: str | None) -> str | None:
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
            f"content encoding {shown(name)} is not supported: send the bytes uncompressed",
        )
    # A BOM is legal at the start of UTF-8 JSON text but json.loads refuses it in a str.
    return "utf-8-sig" if info.name == "utf-8" else info.name


def checked_body(body: bytes, max_frame_bytes: int) -> bytes:
    if not body:
        raise FrameError(FrameErrorCode.EMPTY, "message body is empty")
    if len(body) > max_frame_bytes:
        raise FrameError(
            FrameErrorCode.TOO_LARGE,
            f"message is {len(body)} bytes; the limit is {max_frame_bytes}",
        )
    return body
