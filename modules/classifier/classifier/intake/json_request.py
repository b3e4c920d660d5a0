"""The seed's scoring contract: a JSON object ``{"<name>": "<base64 image>", ...}``.

Every entry becomes its own frame, named in the prediction (at most ``max_entries`` of them).
One bad entry is carried as a rejected request, so the other entries are still scored; a
request over the limit is refused whole.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace

from classifier.bounded_text import MAX_ID_CHARS, MAX_VALUE_CHARS, bounded_text
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta, FrameRequest
from classifier.intake.envelope import shown

JSON_TYPES = {"application/json", "text/json"}
DEFAULT_MAX_ENTRIES = 32
_UTF8_BOM = b"\xef\xbb\xbf"


def is_json_type(media_type: str) -> bool:
    return media_type in JSON_TYPES or media_type.endswith("+json")


def looks_like_json(body: bytes) -> bool:
    return body.removeprefix(_UTF8_BOM).lstrip()[:1] == b"{"


class _Entries(list[tuple[str, object]]):
    """A JSON object's members in order, duplicates kept (``json`` keeps only the last)."""


def json_requests(
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
            f"entry name {shown(duplicate)} appears more than once",
        )
    requests = []
    for name, value in doc:
        name_text = bounded_text(name, MAX_VALUE_CHARS)
        entry_id = bounded_text(f"{meta.frame_id}/{name}", MAX_ID_CHARS)
        entry_meta = replace(meta, frame_id=entry_id, name=name_text)
        request = FrameRequest(entry_meta, b"", received_s=now)
        try:
            request.payload = _b64_image(name_text, value)
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
            f"entry {shown(name)} must be a base64 string, not {kind}",
        )
    # Data URLs ("data:image/png;base64,....") are what browsers and many tools produce.
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FrameError(
            FrameErrorCode.BAD_BASE64, f"entry {shown(name)} is not valid base64: {e}"
        ) from e
