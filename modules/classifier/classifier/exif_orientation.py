"""The EXIF orientation of a JPEG, and turning decoded pixels upright by it.

Why here: OpenCV applied the orientation itself, but JPEGs are decoded with libjpeg-turbo
directly (see ``decode``), which leaves pixels as stored. Phones and many IP cameras store
frames sideways and say so in EXIF tag 0x0112. Every read is bounds-checked: the segment is
input like any other.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

_ORIENTATION_TAG = 0x0112
_SHORT = 3
_SOS = 0xDA


def exif_orientation(data: bytes) -> int:
    """The orientation (1-8) declared in the JPEG's APP1 EXIF segment; 1 when absent or odd."""
    pos = 2
    n = len(data)
    while pos + 4 <= n and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == _SOS:
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            break
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            return _tiff_orientation(body[6:])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for index in range(min(count, 512)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            break
        tag, kind = struct.unpack_from(order + "HH", tiff, entry)
        if tag == _ORIENTATION_TAG and kind == _SHORT:
            (value,) = struct.unpack_from(order + "H", tiff, entry + 8)
            return value if 1 <= value <= 8 else 1
    return 1


def upright(pixels: npt.NDArray[np.uint8], orientation: int) -> npt.NDArray[np.uint8]:
    """``pixels`` (rows, columns[, channels]) as a viewer shows them for ``orientation``."""
    if orientation == 2:
        turned = pixels[:, ::-1]
    elif orientation == 3:
        turned = pixels[::-1, ::-1]
    elif orientation == 4:
        turned = pixels[::-1]
    elif orientation == 5:
        turned = pixels.swapaxes(0, 1)
    elif orientation == 6:
        turned = pixels.swapaxes(0, 1)[:, ::-1]
    elif orientation == 7:
        turned = pixels.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        turned = pixels.swapaxes(0, 1)[::-1]
    else:
        return pixels
    return np.ascontiguousarray(turned)
