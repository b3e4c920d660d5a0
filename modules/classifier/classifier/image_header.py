"""Reads an encoded image's format and pixel dimensions from its header, without decoding it.

Why: a 2 KB PNG can claim 60,000 x 60,000 pixels and make a decoder allocate gigabytes. The
dimensions are checked against the configured limits before any decoder sees the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

from classifier.errors import FrameError, FrameErrorCode


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    BMP = "bmp"


@dataclass(frozen=True)
class ImageHeader:
    format: ImageFormat
    width: int
    height: int


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def sniff_format(data: bytes) -> ImageFormat | None:
    if data.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if data.startswith(_PNG_MAGIC):
        return ImageFormat.PNG
    if data.startswith(b"BM") and len(data) >= 26:
        return ImageFormat.BMP
    return None


def read_header(data: bytes) -> ImageHeader:
    fmt = sniff_format(data)
    if fmt is None:
        raise FrameError(FrameErrorCode.UNRECOGNISED_FORMAT, "bytes are not JPEG, PNG or BMP")
    reader = {ImageFormat.JPEG: _jpeg, ImageFormat.PNG: _png, ImageFormat.BMP: _bmp}[fmt]
    width, height = reader(data)
    if width <= 0 or height <= 0:
        raise FrameError(FrameErrorCode.DIMENSIONS, f"{fmt} header gives {width}x{height}")
    return ImageHeader(fmt, width, height)


def _corrupt(fmt: str, why: str) -> FrameError:
    return FrameError(FrameErrorCode.CORRUPT_IMAGE, f"{fmt}: {why}")


def _png(data: bytes) -> tuple[int, int]:
    # The IHDR chunk must come first: length(4) "IHDR"(4) width(4) height(4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _corrupt("png", "missing IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    if b"IEND" not in data[-32:]:
        raise _corrupt("png", "truncated: no IEND chunk at the end")
    return int(width), int(height)


def _bmp(data: bytes) -> tuple[int, int]:
    header_size = struct.unpack("<I", data[14:18])[0]
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        if len(data) < 26:
            raise _corrupt("bmp", "short header")
        w16, h16 = struct.unpack("<HH", data[18:22])
        return int(w16), int(h16)
    if header_size < 40 or len(data) < 26:
        raise _corrupt("bmp", f"unsupported DIB header size {header_size}")
    width, height = struct.unpack("<ii", data[18:26])
    # A negative height marks a top-down bitmap; the size is its absolute value.
    return int(width), abs(int(height))


def _jpeg(data: bytes) -> tuple[int, int]:
    # Walk the marker segments up to the first SOF; entropy-coded data only follows SOS,
    # which always comes after SOF, so segment lengths can be trusted on the way there.
    size: tuple[int, int] | None = None
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise _corrupt("jpeg", f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise _corrupt("jpeg", "segment length below 2")
        if marker in _JPEG_SOF:
            if pos + 9 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            size = (int(width), int(height))
            break
        if marker == 0xDA:  # SOS before SOF: not a valid JPEG
            break
        pos += 2 + length
    if size is None:
        raise _corrupt("jpeg", "no frame header (SOF) found")
    # Decoders fill a truncated scan with grey and only warn; refuse it here instead.
    if data.rfind(b"\xff\xd9", max(0, n - 4096)) < 0:
        raise _corrupt("jpeg", "truncated: no end-of-image marker")
    return size
