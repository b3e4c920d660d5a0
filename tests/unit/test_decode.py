"""Every accepted input format decodes to the right pixels; every bad frame gets its own code."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from classifier.decode import decode_frame, reduction_factor
from classifier.decode_limits import FrameLimits
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta, FrameRequest, PixelFormat, RawLayout
from classifier.image_header import ImageFormat, read_header
from classifier.model_spec import ChannelOrder, Preprocessing, ResizeMode
from tests.conftest import solid_rgb

TARGET = Preprocessing(width=32, height=32)
LIMITS = FrameLimits()


def request(payload: bytes, raw: RawLayout | None = None) -> FrameRequest:
    return FrameRequest(FrameMeta("f1"), payload, raw=raw)


def pil_bytes(rgb: np.ndarray, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format=fmt, **kw)
    return out.getvalue()


def expect_code(payload: bytes, code: FrameErrorCode, limits: FrameLimits = LIMITS, raw=None):
    with pytest.raises(FrameError) as info:
        decode_frame(request(payload, raw), limits, TARGET)
    assert info.value.code is code, info.value.reason
    return info.value


@pytest.mark.parametrize(("fmt", "order"), [("JPEG", "RGB"), ("PNG", "BGR"), ("BMP", "BGR")])
def test_pillow_encoded_images_decode_to_the_same_colour(fmt: str, order: str) -> None:
    rgb = solid_rgb((200, 30, 10), 64, 48)
    image = decode_frame(request(pil_bytes(rgb, fmt)), LIMITS, TARGET)
    # libjpeg-turbo decodes straight into the model's order; OpenCV gives BGR.
    assert image.channel_order == order
    assert (image.width, image.height) == (64, 48)
    channels = image.pixels.reshape(-1, 3).mean(axis=0)
    b, g, r = channels if order == "BGR" else channels[::-1]
    assert r == pytest.approx(200, abs=4) and g == pytest.approx(30, abs=4)
    assert b == pytest.approx(10, abs=4)


def test_large_jpeg_is_decoded_at_reduced_scale_for_a_small_model() -> None:
    data = cv2.imencode(".jpg", np.full((480, 640, 3), 90, np.uint8))[1].tobytes()
    image = decode_frame(request(data), LIMITS, TARGET)
    assert image.pixels.shape[:2] == (60, 80)  # 1/8 scale, still >= 32x32
    assert (image.width, image.height) == (640, 480)  # the frame's own size is reported


def test_reduction_never_goes_below_the_model_input() -> None:
    assert reduction_factor(640, 480, TARGET) == 8
    assert reduction_factor(100, 100, TARGET) == 2
    assert reduction_factor(40, 40, TARGET) == 1
    big = Preprocessing(width=224, height=224)
    assert reduction_factor(640, 480, big) == 2
    letterbox = Preprocessing(width=32, height=32, resize=ResizeMode.LETTERBOX)
    assert reduction_factor(512, 64, letterbox) == 8  # letterbox needs only the long side


def test_grayscale_models_get_single_channel_pixels() -> None:
    gray_target = Preprocessing(
        width=8, height=8, channel_order=ChannelOrder.GRAY, mean=(0,), std=(1,)
    )
    data = pil_bytes(solid_rgb((100, 100, 100)), "PNG")
    image = decode_frame(request(data), LIMITS, gray_target)
    assert image.channel_order == "GRAY" and image.pixels.ndim == 2


@pytest.mark.parametrize(
    ("pixel_format", "order", "channels"),
    [(PixelFormat.RGB24, "RGB", 3), (PixelFormat.BGR24, "BGR", 3), (PixelFormat.GRAY8, "GRAY", 1)],
)
def test_raw_buffers_are_wrapped_without_copying_pixels(pixel_format, order, channels) -> None:
    data = bytes(range(256)) * (4 * 3 * channels) if channels else b""
    data = data[: 16 * 12 * channels]
    image = decode_frame(request(data, RawLayout(pixel_format, 16, 12)), LIMITS, TARGET)
    assert image.channel_order == order
    assert image.pixels.shape[:2] == (12, 16)
    assert image.pixels.tobytes() == data


def test_real_cifar_png_and_exif_jpeg_decode(testdata: Path) -> None:
    png = decode_frame(request((testdata / "cifar-automobile8.png").read_bytes()), LIMITS, TARGET)
    assert (png.width, png.height) == (32, 32)
    photo = (testdata / "examples_leopard.jpg").read_bytes()
    header = read_header(photo)
    assert header.format is ImageFormat.JPEG
    image = decode_frame(request(photo), LIMITS, TARGET)
    assert image.pixels.size > 0


# -- bad frames ------------------------------------------------------------------------


def test_empty_frame_is_refused() -> None:
    expect_code(b"", FrameErrorCode.EMPTY)


def test_frame_over_the_byte_limit_is_refused() -> None:
    data = pil_bytes(solid_rgb((1, 2, 3)), "PNG")
    expect_code(data, FrameErrorCode.TOO_LARGE, FrameLimits(max_frame_bytes=len(data) - 1))


def test_bytes_that_are_no_image_are_unrecognised() -> None:
    expect_code(b"hello, this is text, not pixels", FrameErrorCode.UNRECOGNISED_FORMAT)


def test_truncated_jpeg_is_corrupt_not_half_grey() -> None:
    data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[1]
    error = expect_code(data.tobytes()[: len(data) // 2], FrameErrorCode.CORRUPT_IMAGE)
    assert "truncated" in error.reason


def test_truncated_png_is_corrupt() -> None:
    data = pil_bytes(solid_rgb((5, 5, 5)), "PNG")
    expect_code(data[:-20], FrameErrorCode.CORRUPT_IMAGE)


def test_jpeg_with_garbage_scan_data_is_corrupt() -> None:
    good = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
    header_end = good.index(b"\xff\xda")  # keep the headers, scramble the scan
    bad = good[: header_end + 2] + b"\x00\x01" + b"\xff" * 50 + b"\xff\xd9"
    expect_code(bad, FrameErrorCode.CORRUPT_IMAGE)


def test_png_claiming_huge_dimensions_is_a_decompression_bomb() -> None:
    data = forged_png(10_000, 10_000)  # 100 M pixels, each side legal
    assert len(data) < 100_000
    expect_code(data, FrameErrorCode.DECOMPRESSION_BOMB)


def test_absurd_side_length_is_refused_before_decoding() -> None:
    expect_code(forged_png(100_000, 2), FrameErrorCode.DIMENSIONS)


def test_zero_sized_header_is_refused() -> None:
    expect_code(forged_png(0, 10), FrameErrorCode.DIMENSIONS)


def test_raw_buffer_of_the_wrong_length_is_a_size_mismatch() -> None:
    raw = RawLayout(PixelFormat.RGB24, 10, 10)
    error = expect_code(b"\x00" * 299, FrameErrorCode.RAW_SIZE_MISMATCH, raw=raw)
    assert "300" in error.reason


def test_raw_buffer_with_absurd_dimensions_is_refused() -> None:
    raw = RawLayout(PixelFormat.GRAY8, 20_000, 20_000)
    expect_code(b"\x00" * 10, FrameErrorCode.DIMENSIONS, raw=raw)


def forged_png(width: int, height: int) -> bytes:
    """A well-formed PNG header claiming any size, with a tiny (wrong) data stream."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
