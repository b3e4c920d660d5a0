"""Reads an encoded image's format and pixel dimensions from its header, without decoding it.

Why: a 2 KB PNG can claim 60,000 x 60,000 pixels and make a decoder allocate gigabytes. The
dimensions are checked against the configured limits before any decoder sees the bytes.

The check is only as good as its agreement with the decoder. A JPEG header parser of our own
once read a 16 x 16 frame header while libjpeg, which skips ``FF 00`` pairs between markers,
found a 20,000 x 20,000 one earlier in the same 656 bytes (2.4 GB decoded). So a JPEG's size
comes from libjpeg-turbo's own header reader, the library that also decodes it (``decode``),
in strict mode: anything it would only warn about is refused. PNG and BMP headers are read
here exactly where libpng and OpenCV's BMP reader take them (IHDR must be the first chunk; BMP
DIB headers of 36 bytes or more carry 32-bit sizes, the 12-byte OS/2 one 16-bit sizes), and
OpenCV's own pixel limit backs this up (``opencv_limits``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

import simplejpeg

from classifier.bounded_text import reason_text
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
    _png_chunks_fit(data)
    return int(width), int(height)


def _png_chunks_fit(data: bytes) -> None:
    """Every chunk's length stays within the data, up to an IEND chunk.

    OpenCV's PNG reader allocates a buffer of the length a chunk declares before it reads
    the chunk: one flipped byte made a 3 KB PNG's IDAT claim 704,646,203 bytes, 672 MB
    allocated for a 64 x 48 image (found by the fuzz harness). A truncated PNG with an IEND
    appended fails here too, its last chunk running past the data.
    """
    pos = 8
    end = len(data)
    while pos + 12 <= end:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if length > end - pos - 12:
            raise _corrupt("png", f"{kind!r} chunk of {length} bytes runs past the data")
        if kind == b"IEND":
            return
        pos += 12 + length
    raise _corrupt("png", "truncated: no IEND chunk")


def _bmp(data: bytes) -> tuple[int, int]:
    header_size = struct.unpack("<I", data[14:18])[0]
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        w16, h16 = struct.unpack("<HH", data[18:22])
        return int(w16), int(h16)
    # OpenCV reads 32-bit sizes from any DIB header of 36 bytes or more (BITMAPINFOHEADER,
    # the V2-V5 headers, OS/2 2.x) and refuses the rest.
    if header_size < 36:
        raise _corrupt("bmp", f"unsupported DIB header size {header_size}")
    width, height = struct.unpack("<ii", data[18:26])
    # A negative height marks a top-down bitmap; the size is its absolute value.
    return int(width), abs(int(height))


def _jpeg(data: bytes) -> tuple[int, int]:
    # A truncated scan is decoded as grey by libjpeg with only a warning; the strict decode
    # refuses it later, but a missing end marker is refused here without decoding at all.
    if data.rfind(b"\xff\xd9", max(0, len(data) - 4096)) < 0:
        raise _corrupt("jpeg", "truncated: no end-of-image marker")
    try:
        height, width, _colour, _subsampling = simplejpeg.decode_jpeg_header(data, strict=True)
    except ValueError as e:
        raise _corrupt("jpeg", reason_text(str(e))) from e
    return int(width), int(height)
