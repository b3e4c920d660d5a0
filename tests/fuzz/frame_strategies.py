"""Hypothesis strategies for messages on the ``frames`` input: real encoded images (JPEG
baseline and progressive, PNG, BMP), raw buffers and JSON scoring requests, then broken the
ways inputs break: truncated (with or without an end marker appended), bytes flipped or
inserted, size fields rewritten, spliced, or replaced by noise; with hostile content types,
encodings, properties (times, sizes, formats, huge or unprintable values) and entry names.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from hypothesis import strategies as st
from PIL import Image

from tests.unit.test_hostile_images import hidden_frame_header_bomb, idat_length_bomb


@cache
def seed_images() -> tuple[bytes, ...]:
    rng = np.random.default_rng(7)
    noisy = rng.integers(0, 255, (48, 64, 3), np.uint8)
    progressive = io.BytesIO()
    Image.fromarray(noisy).save(progressive, format="JPEG", progressive=True)
    cmyk = io.BytesIO()
    Image.fromarray(noisy).convert("CMYK").save(cmyk, format="JPEG")
    return (
        bytes(cv2.imencode(".jpg", noisy)[1].tobytes()),
        progressive.getvalue(),
        cmyk.getvalue(),
        bytes(cv2.imencode(".png", noisy)[1].tobytes()),
        bytes(cv2.imencode(".png", noisy[:, :, 0])[1].tobytes()),
        bytes(cv2.imencode(".bmp", noisy)[1].tobytes()),
        # Known hostile inputs belong in the corpus too: CI's short budget must meet them.
        hidden_frame_header_bomb(),
        idat_length_bomb(),
    )


def _rewrite_size(data: bytes, width: int, height: int) -> bytes:
    """Puts another size where each format's header keeps it (JPEG SOF, PNG IHDR, BMP DIB)."""
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return data[:16] + struct.pack(">II", width, height) + data[24:]
    if data.startswith(b"BM") and len(data) >= 26:
        return data[:18] + struct.pack("<II", width, height) + data[26:]
    sof = data.find(b"\xff\xc0")
    if sof < 0:
        sof = data.find(b"\xff\xc2")
    if sof >= 0 and len(data) >= sof + 9:
        size = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
        return data[: sof + 5] + size + data[sof + 9 :]
    return data


def _rewrite_length(data: bytes, which: int, length: int) -> bytes:
    """Puts another length in the ``which``-th PNG chunk or JPEG marker segment (decoders
    that trust a declared length allocate by it: see image_header._png_chunks_fit)."""
    if data.startswith(b"\x89PNG"):
        pos = 8
        for _ in range(which):
            if pos + 8 > len(data):
                return data
            pos += 12 + struct.unpack(">I", data[pos : pos + 4])[0]
        if pos + 4 > len(data):
            return data
        return data[:pos] + struct.pack(">I", length) + data[pos + 4 :]
    markers = [
        i for i in range(2, len(data) - 3) if data[i] == 0xFF and 0xC0 <= data[i + 1] <= 0xFE
    ]
    if not markers:
        return data
    at = markers[which % len(markers)] + 2
    return data[:at] + struct.pack(">H", length & 0xFFFF) + data[at + 2 :]


@st.composite
def broken_image(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(seed_images()))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                ["truncate", "truncate+end", "flip", "insert", "size", "length", "splice"]
            )
        )
        if kind.startswith("truncate") and len(data) > 2:
            data = data[: draw(st.integers(1, len(data) - 1))]
            if kind == "truncate+end":
                data += draw(st.sampled_from([b"\xff\xd9", b"\x00\x00\x00\x00IEND\xaeB`\x82"]))
        elif kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(max_size=16)) + data[at:]
        elif kind == "size":
            big = st.integers(0, 70_000) | st.sampled_from(
                [0, 1, 1_500, 2_048, 4_096, 65_535, 2**31 - 1, 2**32 - 1]
            )
            data = _rewrite_size(data, draw(big), draw(big))
        elif kind == "length":
            data = _rewrite_length(data, draw(st.integers(0, 3)), draw(st.integers(0, 2**32 - 1)))
        elif kind == "splice":
            other = draw(st.sampled_from(seed_images()))
            data = (
                data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))) :]
            )
    return data


hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, categories=("Cc", "Cs", "Zl", "Zp", "Cf")), max_size=20),
    st.integers(1_000, 150_000).map(lambda n: "n" * n),
)

TIMES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "2024-05-01T10:00:00Z",
            "1e400",
            "nan",
            "-1",
            "1714557600123",
        ]
    ),
    hostile_text,
)
SIZES = st.one_of(
    st.integers(-5, 5_000).map(str), st.sampled_from(["1_0", "٣", "1e3", "9" * 5000]), hostile_text
)


@dataclass(frozen=True)
class Frame:
    """One generated message, and what its body was built as (for the invariant)."""

    body: bytes
    content_type: str | None
    content_encoding: str | None
    properties: dict[str, str]
    # Entry names of a JSON request that was not damaged afterwards, else None.
    entries: tuple[str, ...] | None = None


@st.composite
def json_request(draw: st.DrawFn) -> tuple[bytes, tuple[str, ...] | None]:
    names = draw(st.lists(hostile_text, max_size=40, unique=True))
    values: list[object] = []
    for _ in names:
        values.append(
            draw(
                st.one_of(
                    broken_image().map(lambda b: base64.b64encode(b).decode()),
                    st.sampled_from(seed_images()).map(
                        lambda b: "data:image/x;base64," + base64.b64encode(b).decode()
                    ),
                    st.text(max_size=20),
                    st.integers(),
                    st.none(),
                    st.just({"nested": [1, [2, [3]]]}),
                )
            )
        )
    body = json.dumps(dict(zip(names, values, strict=True))).encode()
    if draw(st.booleans()):
        return body, tuple(names)
    damage = draw(st.sampled_from(["nest", "truncate", "charset", "top-level"]))
    if damage == "nest":
        depth = draw(st.integers(500, 200_000))
        body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    elif damage == "truncate" and len(body) > 1:
        body = body[: draw(st.integers(1, len(body) - 1))]
    elif damage == "charset":
        body = body.decode().encode("utf-16")
    else:
        body = json.dumps(values).encode()
    return body, None


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    kind = draw(st.sampled_from(["image", "image", "image", "raw", "json", "noise"]))
    props: dict[str, str] = {}
    if draw(st.booleans()):
        props["capture_time"] = draw(TIMES)
    if draw(st.booleans()):
        props["source_id"] = draw(hostile_text)
    if draw(st.booleans()):
        props["lot"] = draw(hostile_text)
    entries = None
    if kind == "image":
        body = draw(broken_image())
    elif kind == "raw":
        props |= {"pixel_format": draw(st.sampled_from(["rgb24", "bgr24", "gray8", "yuv420p", ""]))}
        props |= {"width": draw(SIZES), "height": draw(SIZES)}
        body = draw(st.binary(max_size=4_096))
    elif kind == "json":
        body, entries = draw(json_request())
    else:
        body = draw(st.binary(max_size=2_048))
    # Mostly what cameras send, so most messages reach the decoders; sometimes anything.
    usual = {"image": "image/jpeg", "raw": "application/octet-stream", "json": "application/json"}
    if draw(st.integers(0, 9)) < 8:
        content_type = draw(st.sampled_from([None, usual.get(kind)]))
    else:
        odd = ["image/webp", "text/plain", "application/x+json", "image/x-raw"]
        content_type = draw(st.sampled_from(odd) | hostile_text)
    encoding = draw(st.sampled_from([None] * 16 + ["utf-8", "gzip", "base64", "utf-16", "latin-1"]))
    return Frame(body, content_type, encoding, props, entries)
