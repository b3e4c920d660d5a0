"""The model's spec, not code, decides size, layout, channel order and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.frames import DecodedImage
from classifier.model_spec import ChannelOrder, Layout, Preprocessing, ResizeMode
from classifier.preprocess import Preprocessor


def bgr(b: int, g: int, r: int, w: int = 40, h: int = 20) -> DecodedImage:
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:] = (b, g, r)
    return DecodedImage(pixels, "BGR", w, h)


def test_nchw_rgb_scaled_to_unit_range() -> None:
    out = Preprocessor(Preprocessing(width=8, height=4))(bgr(0, 51, 255))
    assert out.shape == (3, 4, 8) and out.dtype == np.float32
    assert out[0].max() == pytest.approx(1.0) and out[1].max() == pytest.approx(0.2)
    assert out[2].max() == pytest.approx(0.0)


def test_nhwc_bgr_with_mean_and_std() -> None:
    spec = Preprocessing(
        width=4,
        height=4,
        layout=Layout.NHWC,
        channel_order=ChannelOrder.BGR,
        scale=1.0,
        mean=(10.0, 20.0, 30.0),
        std=(2.0, 4.0, 5.0),
    )
    out = Preprocessor(spec)(bgr(30, 40, 80))
    assert out.shape == (4, 4, 3)
    np.testing.assert_allclose(out[0, 0], [10.0, 5.0, 10.0])


def test_mobilenet_style_minus_one_to_one() -> None:
    spec = Preprocessing(
        width=4, height=4, scale=1 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)
    )
    out = Preprocessor(spec)(bgr(0, 255, 0))
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)


def test_rgb_raw_frames_are_not_swapped_twice() -> None:
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:] = (255, 0, 0)  # red, in RGB order
    out = Preprocessor(Preprocessing(width=4, height=4))(DecodedImage(pixels, "RGB", 4, 4))
    assert out[0].mean() == pytest.approx(1.0) and out[2].mean() == 0.0


def test_gray_frames_feed_colour_models_and_vice_versa() -> None:
    gray = DecodedImage(np.full((4, 4), 255, np.uint8), "GRAY", 4, 4)
    assert Preprocessor(Preprocessing(width=4, height=4))(gray).shape == (3, 4, 4)
    spec = Preprocessing(
        width=4, height=4, channel_order=ChannelOrder.GRAY, mean=(0.0,), std=(1.0,)
    )
    assert Preprocessor(spec)(bgr(1, 2, 3)).shape == (1, 4, 4)


def test_letterbox_keeps_aspect_and_pads_with_the_pad_value() -> None:
    spec = Preprocessing(width=10, height=10, scale=1.0, resize=ResizeMode.LETTERBOX, pad_value=7)
    out = Preprocessor(spec)(bgr(200, 200, 200, w=40, h=20))  # 2:1 frame into a square
    assert out.shape == (3, 10, 10)
    assert np.all(out[:, 0, :] == 7) and np.all(out[:, -1, :] == 7)  # bars top and bottom
    assert np.all(out[:, 5, :] == 200)


def test_center_crop_fills_the_input_and_cuts_the_long_side() -> None:
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :10] = 255  # a white left third, which a centre crop must cut away
    spec = Preprocessing(width=10, height=10, scale=1.0, resize=ResizeMode.CENTER_CROP)
    out = Preprocessor(spec)(DecodedImage(pixels, "BGR", 30, 10))
    assert out.max() == 0.0


def test_timings_are_recorded_on_the_image() -> None:
    image = bgr(1, 1, 1)
    Preprocessor(Preprocessing(width=4, height=4))(image)
    assert image.timings_ms["preprocess"] >= 0.0


def test_nchw_with_per_channel_mean_and_std_normalises_each_plane() -> None:
    spec = Preprocessing(width=4, height=4, scale=1.0, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    out = Preprocessor(spec)(bgr(80, 40, 30))  # RGB order after conversion: 30, 40, 80
    np.testing.assert_allclose(out[:, 0, 0], [10.0, 5.0, 10.0])
