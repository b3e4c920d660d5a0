"""Images whose header and data disagree, truncated images with end markers appended, and the
decoder path that replaced OpenCV's for JPEG (orientation, CMYK, reduced scale)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image

from classifier.decode import decode_frame
from classifier.decode_limits import FrameLimits
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import DecodedImage, FrameMeta, FrameRequest
from classifier.model_spec import ChannelOrder, Preprocessing, ResizeMode
from classifier.preprocess import Preprocessor
from tests.conftest import REPO

TARGET = Preprocessing(width=32, height=32)
LIMITS = FrameLimits()


def decode(data: bytes, limits: FrameLimits = LIMITS, target: Preprocessing = TARGET):
    return decode_frame(FrameRequest(FrameMeta("f"), data), limits, target)


def code_of(data: bytes, limits: FrameLimits = LIMITS) -> FrameErrorCode:
    with pytest.raises(FrameError) as info:
        decode(data, limits)
    return info.value.code


def noise(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (height, width, 3), np.uint8)


def jpeg_of(pixels: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".jpg", pixels)[1].tobytes())


def segment(data: bytes, marker: int) -> tuple[int, int]:
    start = data.index(bytes([0xFF, marker]))
    (length,) = struct.unpack(">H", data[start + 2 : start + 4])
    return start, start + 2 + length


def hidden_frame_header_bomb() -> bytes:
    """A JPEG whose frame header (SOF) claims 20,000 x 20,000 pixels, hidden from a header
    parser that reads ``FF 00`` as a marker with a length; libjpeg skips ``FF 00`` as fill
    and finds it. A decoy 16 x 16 SOF follows where such a parser lands. 656 bytes."""
    small = jpeg_of(np.zeros((16, 16, 3), np.uint8))
    start, end = segment(small, 0xC0)
    sof = small[start:end]
    huge = sof[:5] + struct.pack(">HH", 20_000, 20_000) + sof[9:]
    body = small[2:start] + huge + small[end : small.rindex(b"\xff\xd9")] + b"\xff\xd9"
    return b"\xff\xd8\xff\x00" + struct.pack(">H", len(body) + 2) + body + sof + b"\xff\xd9"


def test_a_frame_header_hidden_from_a_header_parser_is_refused() -> None:
    bomb = hidden_frame_header_bomb()
    assert len(bomb) < 2_000
    assert code_of(bomb) is FrameErrorCode.CORRUPT_IMAGE


def test_a_jpeg_claiming_a_huge_size_is_a_bomb_before_decoding() -> None:
    small = jpeg_of(np.zeros((16, 16, 3), np.uint8))
    start, end = segment(small, 0xC0)
    sof = small[start:end]
    forged = small[:start] + sof[:5] + struct.pack(">HH", 7_000, 7_000) + sof[9:] + small[end:]
    assert code_of(forged) is FrameErrorCode.DECOMPRESSION_BOMB


def test_a_truncated_jpeg_with_an_end_marker_appended_is_corrupt() -> None:
    whole = jpeg_of(noise(320, 240))
    error_code = code_of(whole[: len(whole) // 2] + b"\xff\xd9")
    assert error_code is FrameErrorCode.CORRUPT_IMAGE


def test_a_truncated_png_with_its_end_chunk_appended_is_corrupt() -> None:
    whole = bytes(cv2.imencode(".png", noise(200, 200))[1].tobytes())
    assert code_of(whole[: len(whole) // 2] + whole[-12:]) is FrameErrorCode.CORRUPT_IMAGE


def bmp(header_size: int, width: int, height: int) -> bytes:
    row = (width * 3 + 3) // 4 * 4
    pixels = b"\x80" * row * abs(height)
    if header_size == 12:
        dib = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        dib = struct.pack("<IiiHH", header_size, width, height, 1, 24).ljust(header_size, b"\0")
    offset = 14 + len(dib)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + pixels


@pytest.mark.parametrize("header_size", [12, 36, 40, 52, 56, 64, 108, 124])
def test_bmp_headers_are_read_where_opencv_reads_them(header_size: int) -> None:
    image = decode(bmp(header_size, 30, 20))
    assert (image.width, image.height) == (30, 20)


def test_a_bmp_header_opencv_cannot_read_is_corrupt() -> None:
    assert code_of(bmp(16, 30, 20)) is FrameErrorCode.CORRUPT_IMAGE


def test_a_truncated_bmp_is_corrupt() -> None:
    assert code_of(bmp(40, 300, 200)[:5_000]) is FrameErrorCode.CORRUPT_IMAGE


def test_opencvs_own_pixel_limit_is_capped_to_max_pixels_before_it_loads() -> None:
    # A fresh interpreter: OpenCV reads the limit once, when it loads.
    script = textwrap.dedent(
        """
        import classifier  # first: sets OpenCV's limits from MAX_PIXELS before cv2 loads
        import cv2, numpy as np
        from classifier.decode import decode_frame
        from classifier.decode_limits import FrameLimits
        from classifier.errors import FrameError
        from classifier.frames import FrameMeta, FrameRequest
        from classifier.model_spec import Preprocessing
        png = cv2.imencode(".png", np.zeros((200, 200, 3), np.uint8))[1].tobytes()
        # The header check allows more than OpenCV's cap: as if header and data disagreed.
        lenient = FrameLimits(max_pixels=10**6)
        try:
            decode_frame(FrameRequest(FrameMeta("f"), png), lenient, Preprocessing(32, 32))
        except FrameError as e:
            print(e.code)
        """
    )
    env = {"MAX_PIXELS": "10000", "PYTHONPATH": f"{REPO / 'modules' / 'classifier'}:{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "decompression_bomb", done.stderr


# -- the JPEG decoder: behaviour kept from OpenCV -----------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_opencv_applied_it(orientation: int) -> None:
    pixels = noise(48, 32)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", exif=exif.tobytes(), quality=95)
    data = out.getvalue()
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert expected is not None
    image = decode(data, target=Preprocessing(width=48, height=48, channel_order=ChannelOrder.BGR))
    assert image.pixels.shape == expected.shape
    assert np.abs(image.pixels.astype(int) - expected.astype(int)).mean() < 3


def test_cmyk_and_grayscale_jpegs_decode() -> None:
    for mode in ("CMYK", "L"):
        out = io.BytesIO()
        Image.fromarray(noise(40, 30)).convert(mode).save(out, format="JPEG")
        assert decode(out.getvalue()).pixels.shape[:2] == (30, 40)


def test_progressive_jpegs_decode_at_reduced_scale() -> None:
    out = io.BytesIO()
    Image.fromarray(noise(640, 480)).save(out, format="JPEG", progressive=True)
    assert decode(out.getvalue()).pixels.shape[:2] == (60, 80)


# -- preprocessing ------------------------------------------------------------------------


def test_centre_crop_of_an_extreme_aspect_ratio_stays_small() -> None:
    spec = Preprocessing(width=224, height=224, resize=ResizeMode.CENTER_CROP)
    image = DecodedImage(np.zeros((16_384, 1, 3), np.uint8), "BGR", 1, 16_384)
    tracemalloc.start()
    try:
        tensor = Preprocessor(spec)(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tensor.shape == (3, 224, 224)
    assert peak < 16 * 1024 * 1024  # resizing before cropping allocated 2.4 GB here


def idat_length_bomb() -> bytes:
    """A 64 x 48 PNG whose IDAT claims 704,646,203 bytes, as one flipped byte made it in the
    fuzz run that found it: OpenCV allocated 672 MB for it before reading."""
    whole = bytes(cv2.imencode(".png", noise(64, 48))[1].tobytes())
    idat = whole.index(b"IDAT") - 4
    return whole[:idat] + struct.pack(">I", 704_646_203) + whole[idat + 4 :]


def test_a_png_chunk_claiming_more_bytes_than_the_file_has_is_refused_unread() -> None:
    with pytest.raises(FrameError) as info:
        decode(idat_length_bomb())
    assert info.value.code is FrameErrorCode.CORRUPT_IMAGE
    assert "runs past the data" in info.value.reason  # refused by the header check, unread
