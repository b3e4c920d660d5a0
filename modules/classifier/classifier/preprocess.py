"""Shapes decoded pixels into the model's input tensor, as the model's spec describes.

Resize first (on uint8, the cheapest place), then channel order, then one fused multiply-add
for scale/mean/std; the result is written straight into the batch buffer's slot.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import numpy.typing as npt

from classifier.frames import DecodedImage
from classifier.model_spec import ChannelOrder, Layout, Preprocessing, ResizeMode

FloatArray = npt.NDArray[np.float32]
U8Array = npt.NDArray[np.uint8]

_CONVERSIONS: dict[tuple[str, ChannelOrder], int] = {
    ("BGR", ChannelOrder.RGB): cv2.COLOR_BGR2RGB,
    ("RGB", ChannelOrder.BGR): cv2.COLOR_RGB2BGR,
    ("BGR", ChannelOrder.GRAY): cv2.COLOR_BGR2GRAY,
    ("RGB", ChannelOrder.GRAY): cv2.COLOR_RGB2GRAY,
    ("GRAY", ChannelOrder.RGB): cv2.COLOR_GRAY2RGB,
    ("GRAY", ChannelOrder.BGR): cv2.COLOR_GRAY2BGR,
}


class Preprocessor:
    """Precomputes the normalisation constants once per model."""

    def __init__(self, spec: Preprocessing) -> None:
        self.spec = spec
        std = np.asarray(spec.std, dtype=np.float32)
        # ((x * scale) - mean) / std == x * (scale / std) + (-mean / std)
        self._gain = (spec.scale / std).astype(np.float32)
        self._bias = (-np.asarray(spec.mean, dtype=np.float32) / std).astype(np.float32)
        # Most specs (x/255, MobileNet's x/127.5 - 1) treat every channel alike: scalar
        # arithmetic then runs 20x faster than broadcasting a 3-vector over H x W x 3.
        self._uniform = bool(
            np.all(self._gain == self._gain[0]) and np.all(self._bias == self._bias[0])
        )

    def input_shape(self) -> tuple[int, int, int]:
        s = self.spec
        if s.layout is Layout.NCHW:
            return (s.channels, s.height, s.width)
        return (s.height, s.width, s.channels)

    def __call__(self, image: DecodedImage, out: FloatArray | None = None) -> FloatArray:
        """The model's input tensor for one image; written into ``out`` when given (a row of
        a shared batch buffer), which saves an allocation and a copy per frame."""
        started = time.perf_counter()
        pixels = self._resize(image.pixels)
        pixels = self._convert(pixels, image.channel_order)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if self.spec.layout is Layout.NCHW:
            # Transposing the uint8 image is 4x less memory traffic than the float one, and
            # leaves each channel a contiguous plane for the arithmetic below.
            pixels = np.ascontiguousarray(pixels.transpose(2, 0, 1))
        if out is None:
            out = pixels.astype(np.float32)
        else:
            np.copyto(out, pixels, casting="unsafe")  # uint8 to float32, in place
        if self._uniform:
            out *= self._gain[0]
            out += self._bias[0]
        elif self.spec.layout is Layout.NCHW:
            for channel, (gain, bias) in enumerate(zip(self._gain, self._bias, strict=True)):
                out[channel] *= gain
                out[channel] += bias
        else:
            out *= self._gain
            out += self._bias
        image.timings_ms["preprocess"] = (time.perf_counter() - started) * 1000.0
        return out

    def _resize(self, pixels: U8Array) -> U8Array:
        s = self.spec
        h, w = pixels.shape[:2]
        if s.resize is ResizeMode.STRETCH:
            return _resize_to(pixels, s.width, s.height)
        if s.resize is ResizeMode.LETTERBOX:
            scale = min(s.width / w, s.height / h)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            inner = _resize_to(pixels, nw, nh)
            top, left = (s.height - nh) // 2, (s.width - nw) // 2
            value = [s.pad_value] * (1 if inner.ndim == 2 else inner.shape[2])
            padded = cv2.copyMakeBorder(
                inner,
                top,
                s.height - nh - top,
                left,
                s.width - nw - left,
                cv2.BORDER_CONSTANT,
                value=value,
            )
            return np.asarray(padded, dtype=np.uint8)
        # Centre crop: cut the source region that maps onto the model input, then resize only
        # that. Resizing first would scale the long side of a 1 x 16,384 frame by 224 for a
        # 224 x 224 model: 3.7 million rows, gigabytes for one frame.
        scale = max(s.width / w, s.height / h)
        cw, ch = min(w, max(1, round(s.width / scale))), min(h, max(1, round(s.height / scale)))
        top, left = (h - ch) // 2, (w - cw) // 2
        return _resize_to(pixels[top : top + ch, left : left + cw], s.width, s.height)

    def _convert(self, pixels: U8Array, order: str) -> U8Array:
        code = _CONVERSIONS.get((order, self.spec.channel_order))
        if code is None:
            return pixels
        return np.asarray(cv2.cvtColor(pixels, code), dtype=np.uint8)


def _resize_to(pixels: U8Array, width: int, height: int) -> U8Array:
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    # INTER_AREA averages, which avoids aliasing when shrinking by 2x or more; below that,
    # bilinear sampling already sees every source pixel and costs a sixth as much.
    strong_shrink = w >= 2 * width or h >= 2 * height
    interpolation = cv2.INTER_AREA if strong_shrink else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (width, height), interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8)
