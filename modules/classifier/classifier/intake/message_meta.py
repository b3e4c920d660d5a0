"""A frame's identity and provenance, read from its message's properties.

Every field is cleaned (``bounded_text``) or dropped when unreadable, never refused: these are
metadata, not pixels, and a frame with a bad capture time is still worth scoring.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from classifier.bounded_text import MAX_ID_CHARS, MAX_VALUE_CHARS, bounded_text
from classifier.frames import FrameMeta

_sequence = itertools.count(1)

# Property names upstream modules commonly use; the first one present wins.
SOURCE_KEYS = ("source_id", "camera_id", "cameraId", "source", "$.cmid")
CAPTURE_TIME_KEYS = ("capture_time", "captureTime", "timestamp")


def frame_meta_from(
    message_id: str | None,
    correlation_id: str | None,
    properties: Mapping[str, str],
    passthrough_keys: Collection[str] = (),
) -> FrameMeta:
    """Never raises: every field is cleaned (``bounded_text``) or dropped when unreadable."""
    source_raw = _first(properties, SOURCE_KEYS)
    source = None if source_raw is None else bounded_text(source_raw, MAX_VALUE_CHARS)
    frame_id = message_id or correlation_id or f"{source or 'frame'}-{next(_sequence)}"
    raw_time = _first(properties, CAPTURE_TIME_KEYS)
    echoed = (
        {
            k: bounded_text(properties[k], MAX_VALUE_CHARS)
            for k in passthrough_keys
            if k in properties
        }
        if passthrough_keys and properties
        else {}
    )
    return FrameMeta(
        frame_id=bounded_text(frame_id, MAX_ID_CHARS),
        source_id=source,
        capture_time=normalise_time(raw_time),
        passthrough=echoed,
    )


# The longest ISO 8601 text worth parsing ("2024-05-01T10:00:00.000000+01:00" is 32).
_MAX_TIME_CHARS = 40


def _first(properties: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` with a non-empty value (a loop: every frame's message is read,
    and a generator per field cost a third of reading one)."""
    if properties:
        for key in keys:
            value = properties.get(key)
            if value:
                return value
    return None


def normalise_time(value: object) -> str | None:
    """ISO 8601 in UTC from ISO text or epoch seconds/milliseconds; None if absent or unreadable.

    An unreadable capture time does not reject the frame: it is metadata, not pixels. Never
    raises: a camera with an unset clock sends year 1 with a +01:00 offset, and converting
    that to UTC overflows ``datetime``; so does year 9999 with a negative offset.
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_TIME_CHARS:
        return None
    try:
        return _iso_utc(value)
    except (ValueError, OverflowError, OSError):
        return None


def _iso_utc(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if not math.isfinite(number) or number < 0:
        return None
    # Epoch values above 1e11 cannot be seconds (year 5138): read them as milliseconds.
    seconds = number / 1000.0 if number > 1e11 else number
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
