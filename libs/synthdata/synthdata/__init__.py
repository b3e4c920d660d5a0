"""Procedurally generated ten-class shape images: the default model's training data.

The public surface is what this module exports; everything else is private. Only numpy and
OpenCV are used, so the same code renders frames inside a synthetic-camera module.

    render(class_id, rng, width, height)   one RGB frame of any size (optional difficulty)
    make_dataset(n, seed, size=32)          camera-path samples shrunk to model size
    TRAIN, TEST                             named splits with fixed seeds
    sample_rng(seed, i)                     the generator behind sample i of a dataset
    Drift, render_drifted(...), drift_rng   the same scene through a drifted camera

Ten classes (``LABELS``): circle, square, triangle, star, cross, ring, hexagon, crescent,
arrow, heart. Each frame varies colour, position, scale, tilt (within 30 degrees of
upright), aspect, fill (flat, gradient, stripes), outline, background (plain, gradients,
stripes, mottled texture), clutter (lumpy blobs, dots, wires that are no class's shape),
exposure, grain and blur; a per-frame difficulty sets how much of that is hard.
"""

from synthdata._dataset import (
    FRAME_LONG_SIDE_PX,
    GENERATOR_VERSION,
    JPEG_PROBABILITY,
    JPEG_QUALITY_RANGE,
    SPLITS,
    TEST,
    TRAIN,
    Split,
    camera_frame_size,
    jpeg_round_trip,
    make_dataset,
    make_sample,
    sample_rng,
    shrink,
)
from synthdata._drift import (
    DRIFT_KINDS,
    NO_DRIFT,
    Drift,
    apply_drift,
    drift_rng,
    make_camera_stream,
    render_drifted,
)
from synthdata._render import MAX_SIDE, MIN_SIDE, render
from synthdata._shapes import LABELS

NUM_CLASSES = len(LABELS)

__all__ = [
    "DRIFT_KINDS",
    "FRAME_LONG_SIDE_PX",
    "GENERATOR_VERSION",
    "JPEG_PROBABILITY",
    "JPEG_QUALITY_RANGE",
    "LABELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "NO_DRIFT",
    "NUM_CLASSES",
    "SPLITS",
    "TEST",
    "TRAIN",
    "Drift",
    "Split",
    "apply_drift",
    "camera_frame_size",
    "drift_rng",
    "jpeg_round_trip",
    "make_camera_stream",
    "make_dataset",
    "make_sample",
    "render",
    "render_drifted",
    "sample_rng",
    "shrink",
]
