"""Datasets as the classifier module sees them: camera-sized frames shrunk to model size.

A training sample follows the same path as a live frame: render at a camera-like size and
aspect ratio, travel as JPEG (most of the time), decode, then ``cv2.resize`` to the model's
square input with ``INTER_AREA``, stretching rather than letterboxing. Training on that path
keeps the model honest about what the module will feed it.

Sample ``i`` of a dataset depends only on ``(seed, i)``: it has its own generator, derived
from a ``SeedSequence`` spawn key, and its class is ``i % 10``. So the first ``k`` samples
of a split are the same whatever ``n`` is, and a test can regenerate any prefix of the
held-out split cheaply and exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synthdata._render import render
from synthdata._shapes import LABELS

# Bump whenever a change alters any generated pixel; models record the version they were
# trained and measured on, and the accuracy test regenerates the held-out split with it.
GENERATOR_VERSION = 1

# Frames are rendered with the long side log-uniform in this range (covering the synthetic
# camera's 128x128 .. 640x480) and an aspect ratio between 3:4 and 4:3.
FRAME_LONG_SIDE_PX = (96, 640)
_ASPECT_RANGE = (3 / 4, 4 / 3)
JPEG_PROBABILITY = 0.7
JPEG_QUALITY_RANGE = (35, 95)


@dataclass(frozen=True)
class Split:
    """A named, fixed-seed slice of the synthetic distribution."""

    name: str
    seed: int
    size: int
    description: str

    def generate(self, n: int | None = None, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """The split's first ``n`` samples (all of them when ``n`` is None)."""
        count = self.size if n is None else n
        if not 0 <= count <= self.size:
            raise ValueError(f"split {self.name!r} has {self.size} samples, asked for {count}")
        return make_dataset(count, self.seed, size)


TRAIN = Split(
    name="train",
    seed=20_240_601,
    size=1_000_000,
    description="training pool; trainers take a prefix of the size they can afford",
)
TEST = Split(
    name="test",
    seed=19_700_101,
    size=10_000,
    description="held-out evaluation set; never used for training or model selection",
)
SPLITS = {split.name: split for split in (TRAIN, TEST)}


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws sample ``index`` of the dataset with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def camera_frame_size(rng: np.random.Generator) -> tuple[int, int]:
    """A (width, height) like the synthetic camera's: 96..640 px long side, 3:4..4:3."""
    lo, hi = FRAME_LONG_SIDE_PX
    long_side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    aspect = float(np.exp(rng.uniform(np.log(_ASPECT_RANGE[0]), np.log(_ASPECT_RANGE[1]))))
    if aspect >= 1.0:
        return round(long_side), round(long_side / aspect)
    return round(long_side * aspect), round(long_side)


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encodes and decodes a frame as JPEG, as it would travel between modules."""
    # cv2's codec assumes BGR: convert so chroma subsampling sees the true colours
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("JPEG decoding failed")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def shrink(frame: np.ndarray, size: int) -> np.ndarray:
    """The module's own resize: stretch to ``size`` x ``size`` with area averaging."""
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def make_sample(class_id: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One camera-path sample: render at a random frame size, maybe JPEG, shrink."""
    width, height = camera_frame_size(rng)
    frame = render(class_id, rng, width, height)
    if rng.random() < JPEG_PROBABILITY:
        frame = jpeg_round_trip(frame, int(rng.integers(*JPEG_QUALITY_RANGE, endpoint=True)))
    return shrink(frame, size)


def make_dataset(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples as (uint8 images N x size x size x 3 RGB, int64 labels N).

    Classes cycle 0, 1, ..., 9, 0, ... so any ``n`` divisible by ten is exactly balanced;
    shuffle before training.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    labels = np.arange(n, dtype=np.int64) % len(LABELS)
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        images[i] = make_sample(int(labels[i]), sample_rng(seed, i), size)
    return images, labels
