"""Camera frames are reproducible from (seed, index) and carry their ground truth."""

from __future__ import annotations

import cv2
import numpy as np

import synthdata
from synthcam.frames import make_frame


def test_frame_is_a_jpeg_of_the_requested_size_with_its_truth() -> None:
    frame = make_frame("cam", 7, 13, 160, 120, 85)
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (120, 160, 3)
    assert frame.truth == synthdata.LABELS[13 % 10]
    assert frame.properties["truth"] == frame.truth
    assert frame.message_id == "cam-13" and frame.properties["seq"] == "13"


def test_same_seed_and_index_give_the_same_pixels() -> None:
    assert make_frame("a", 1, 5, 64, 64, 90).jpeg == make_frame("b", 1, 5, 64, 64, 90).jpeg
    assert make_frame("a", 1, 5, 64, 64, 90).jpeg != make_frame("a", 2, 5, 64, 64, 90).jpeg
