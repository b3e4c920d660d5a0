"""Text copied from input into outcomes and logs: printable, encodable and of bounded length.

Why: a frame's id, a JSON entry's name, a source or a passthrough property is chosen by whoever
sends the frame. Copied as is, a 200 KB name appears three times in a prediction (frame id,
name, correlation id) and pushes it over edgeHub's 256 KB limit; a lone surrogate (legal in
JSON as ``"\\ud800"``) cannot be encoded as UTF-8 at all; a newline forges log lines. Each is
cleaned once, where it enters (``intake``), so everything downstream can trust it.

A cleaned value that differs from the original ends in ``~`` and a short digest of the
original, so two ids that differ only in what was cut or replaced stay distinct.
"""

from __future__ import annotations

import hashlib

# IoT Hub accepts message and correlation ids of up to 128 characters.
MAX_ID_CHARS = 128
# Values copied into properties and bodies (sources, passthrough properties, names).
MAX_VALUE_CHARS = 256
# Reasons quote input (content types, names); they stay short enough to read in a log line.
MAX_REASON_CHARS = 300

_DIGEST_CHARS = 10
_REPLACEMENT = "\ufffd"


def bounded_text(value: object, max_chars: int) -> str:
    """``value`` as printable text of at most ``max_chars`` characters (see the module doc)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= max_chars and text.isprintable():
        return text
    # Only the part that can survive the cut is cleaned: a 200 KB value costs no more than
    # a short one.
    keep = max(0, max_chars - _DIGEST_CHARS - 1)
    head = "".join(ch if ch.isprintable() else _REPLACEMENT for ch in text[:keep])
    digest = hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_CHARS // 2
    ).hexdigest()
    return f"{head}~{digest}"[:max_chars]


def reason_text(value: str) -> str:
    """A human-readable reason, cut to ``MAX_REASON_CHARS`` without a digest (not an id)."""
    text = "".join(ch if ch.isprintable() else _REPLACEMENT for ch in value[: MAX_REASON_CHARS + 1])
    if len(text) > MAX_REASON_CHARS:
        return text[: MAX_REASON_CHARS - 1] + "…"
    return text
