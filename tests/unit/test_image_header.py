"""Formats and sizes are read from headers alone, for every variant cameras produce."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from classifier.errors import FrameError, FrameErrorCode
from classifier.image_header import ImageFormat, read_header, sniff_format


def pil(fmt: str, size=(37, 21), mode="RGB", **kw) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 120).save(out, format=fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (pil("JPEG"), ImageFormat.JPEG),
        (pil("JPEG", progressive=True), ImageFormat.JPEG),
        (pil("JPEG", mode="L"), ImageFormat.JPEG),
        (pil("PNG"), ImageFormat.PNG),
        (pil("PNG", mode="RGBA"), ImageFormat.PNG),
        (pil("BMP"), ImageFormat.BMP),
        (cv2.imencode(".bmp", np.zeros((21, 37, 3), np.uint8))[1].tobytes(), ImageFormat.BMP),
    ],
)
def test_size_is_read_from_the_header(data: bytes, fmt: ImageFormat) -> None:
    header = read_header(data)
    assert (header.format, header.width, header.height) == (fmt, 37, 21)


def test_top_down_bmp_height_is_positive() -> None:
    data = bytearray(pil("BMP"))
    data[22:26] = (-21).to_bytes(4, "little", signed=True)
    assert read_header(bytes(data)).height == 21


def test_jpeg_without_a_frame_header_is_corrupt() -> None:
    with pytest.raises(FrameError) as info:
        read_header(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9")
    assert info.value.code is FrameErrorCode.CORRUPT_IMAGE


def test_unknown_bytes_are_not_sniffed() -> None:
    assert sniff_format(b"GIF89a....") is None
    assert sniff_format(b"BM") is None  # too short to be a bitmap
