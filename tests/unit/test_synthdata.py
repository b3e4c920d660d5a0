"""The synthetic shapes generator: determinism, balance, sizes and the camera path."""

from __future__ import annotations

import numpy as np
import pytest

import synthdata

FRAME_SIZES = [(32, 32), (128, 128), (640, 480), (480, 640), (97, 61), (8, 8)]


def test_labels_are_ten_distinct_readable_names() -> None:
    assert len(synthdata.LABELS) == synthdata.NUM_CLASSES == 10
    assert len(set(synthdata.LABELS)) == 10
    assert all(name.isalpha() and name.islower() for name in synthdata.LABELS)


@pytest.mark.parametrize(("width", "height"), FRAME_SIZES)
def test_every_class_renders_an_rgb_frame_of_the_requested_size(width: int, height: int) -> None:
    rng = np.random.default_rng(width * 1000 + height)
    for class_id in range(synthdata.NUM_CLASSES):
        frame = synthdata.render(class_id, rng, width, height)
        assert frame.shape == (height, width, 3)
        assert frame.dtype == np.uint8
        assert frame.std() > 0, "a frame should never be a flat colour"


def test_render_depends_only_on_the_generator_state() -> None:
    first = synthdata.render(3, np.random.default_rng(7), 200, 150)
    again = synthdata.render(3, np.random.default_rng(7), 200, 150)
    other = synthdata.render(3, np.random.default_rng(8), 200, 150)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("class_id", "width", "height"), [(-1, 32, 32), (10, 32, 32), (0, 7, 32)])
def test_render_rejects_unknown_classes_and_tiny_frames(
    class_id: int, width: int, height: int
) -> None:
    with pytest.raises(ValueError, match="must be"):
        synthdata.render(class_id, np.random.default_rng(0), width, height)


@pytest.mark.parametrize("difficulty", [-0.1, 1.5])
def test_render_rejects_difficulty_outside_zero_to_one(difficulty: float) -> None:
    with pytest.raises(ValueError, match="difficulty"):
        synthdata.render(0, np.random.default_rng(0), 64, 64, difficulty=difficulty)


def test_easiest_frames_show_a_light_shape_on_a_dark_background() -> None:
    rng = np.random.default_rng(4)
    for class_id in range(synthdata.NUM_CLASSES):
        grey = synthdata.render(class_id, rng, 160, 120, difficulty=0.0).mean(axis=2)
        assert np.median(grey) < 100 < 130 < np.percentile(grey, 99)


def test_make_dataset_returns_uint8_rgb_images_and_int64_labels() -> None:
    images, labels = synthdata.make_dataset(20, seed=1)
    assert images.shape == (20, 32, 32, 3)
    assert images.dtype == np.uint8
    assert labels.shape == (20,)
    assert labels.dtype == np.int64


def test_make_dataset_honours_the_requested_size() -> None:
    images, _ = synthdata.make_dataset(3, seed=1, size=64)
    assert images.shape == (3, 64, 64, 3)


def test_same_seed_gives_identical_datasets() -> None:
    a_images, a_labels = synthdata.make_dataset(30, seed=42)
    b_images, b_labels = synthdata.make_dataset(30, seed=42)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)


def test_different_seeds_give_different_images() -> None:
    a_images, _ = synthdata.make_dataset(10, seed=1)
    b_images, _ = synthdata.make_dataset(10, seed=2)
    assert not np.any(np.all(a_images == b_images, axis=(1, 2, 3)))


def test_a_prefix_of_a_dataset_does_not_depend_on_its_length() -> None:
    short_images, short_labels = synthdata.make_dataset(12, seed=5)
    long_images, long_labels = synthdata.make_dataset(25, seed=5)
    np.testing.assert_array_equal(short_images, long_images[:12])
    np.testing.assert_array_equal(short_labels, long_labels[:12])


def test_classes_are_exactly_balanced_in_multiples_of_ten() -> None:
    _, labels = synthdata.make_dataset(50, seed=3)
    assert np.bincount(labels, minlength=10).tolist() == [5] * 10


def test_samples_within_a_dataset_differ() -> None:
    images, _ = synthdata.make_dataset(40, seed=9)
    flat = images.reshape(len(images), -1)
    assert len(np.unique(flat, axis=0)) == len(images)


def test_splits_are_named_with_distinct_fixed_seeds() -> None:
    assert set(synthdata.SPLITS) == {"train", "test"}
    assert synthdata.TRAIN.seed != synthdata.TEST.seed
    assert synthdata.TEST.size >= 5_000


def test_a_split_generates_its_own_seeded_prefix() -> None:
    images, labels = synthdata.TEST.generate(10)
    expected_images, expected_labels = synthdata.make_dataset(10, synthdata.TEST.seed)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_a_split_refuses_more_samples_than_it_has() -> None:
    with pytest.raises(ValueError, match="has 10000 samples"):
        synthdata.TEST.generate(synthdata.TEST.size + 1)


def test_camera_frame_sizes_stay_in_the_documented_range() -> None:
    rng = np.random.default_rng(0)
    lo, hi = synthdata.FRAME_LONG_SIDE_PX
    for _ in range(500):
        width, height = synthdata.camera_frame_size(rng)
        assert lo - 1 <= max(width, height) <= hi + 1
        assert 0.74 <= width / height <= 1.34


def test_jpeg_round_trip_keeps_size_and_colour_order() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 0] = 220  # pure red: a channel swap would show up as blue
    decoded = synthdata.jpeg_round_trip(frame, quality=90)
    assert decoded.shape == frame.shape
    red, _, blue = decoded.reshape(-1, 3).mean(axis=0)
    assert red > 200 > 20 > blue


def test_shrink_stretches_to_a_square_with_area_averaging() -> None:
    frame = np.zeros((60, 120, 3), np.uint8)
    frame[:, 60:] = 200
    small = synthdata.shrink(frame, 4)
    assert small.shape == (4, 4, 3)
    assert small[:, :2].max() == 0 and small[:, 2:].min() == 200
