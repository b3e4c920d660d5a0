"""The CIFAR-10 loader, on small fake batches written in the real python-pickle layout."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from cloud_tools.training import cifar10

PER_BATCH = 4


def _planar_rows(images: np.ndarray) -> np.ndarray:
    """N x 32 x 32 x 3 RGB to CIFAR rows: 1024 red, 1024 green, 1024 blue, row-major."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _write_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    doc = {
        b"batch_label": path.name.encode(),
        b"labels": labels,
        b"data": _planar_rows(images),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    with path.open("wb") as f:
        pickle.dump(doc, f, protocol=2)


@pytest.fixture
def fake_cifar(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Five training batches and a test batch of random images; returns (dir, images, labels)."""
    rng = np.random.default_rng(0)
    count = PER_BATCH * 6
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(count) % 10).astype(np.int64)
    names = [*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH]
    for i, name in enumerate(names):
        part = slice(i * PER_BATCH, (i + 1) * PER_BATCH)
        _write_batch(tmp_path / name, images[part], labels[part].tolist())
    meta = {b"label_names": [n.encode() for n in cifar10.LABELS], b"num_vis": 3072}
    with (tmp_path / cifar10.META_FILE).open("wb") as f:
        pickle.dump(meta, f, protocol=2)
    return tmp_path, images, labels


def test_loader_returns_rgb_images_labels_and_names(fake_cifar) -> None:
    directory, images, labels = fake_cifar
    data = cifar10.load_cifar10(directory)
    train_count = PER_BATCH * 5
    np.testing.assert_array_equal(data.train_images, images[:train_count])
    np.testing.assert_array_equal(data.train_labels, labels[:train_count])
    np.testing.assert_array_equal(data.test_images, images[train_count:])
    np.testing.assert_array_equal(data.test_labels, labels[train_count:])
    assert data.train_images.dtype == np.uint8
    assert data.train_labels.dtype == np.int64
    assert data.labels == cifar10.LABELS


def test_rows_are_read_as_red_then_green_then_blue_planes() -> None:
    row = np.zeros((1, 3072), np.uint8)
    row[0, 0] = 10  # red plane, pixel (0, 0)
    row[0, 1024 + 33] = 20  # green plane, pixel (1, 1)
    row[0, 2048 + 1023] = 30  # blue plane, pixel (31, 31)
    image = cifar10.rows_to_images(row)[0]
    assert image[0, 0].tolist() == [10, 0, 0]
    assert image[1, 1].tolist() == [0, 20, 0]
    assert image[31, 31].tolist() == [0, 0, 30]


def test_a_missing_batch_is_reported_by_name(fake_cifar) -> None:
    directory, _, _ = fake_cifar
    (directory / "data_batch_3").unlink()
    with pytest.raises(cifar10.Cifar10Error, match="data_batch_3"):
        cifar10.load_cifar10(directory)


def test_rows_of_the_wrong_length_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    with path.open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(cifar10.Cifar10Error, match="100 bytes"):
        cifar10.load_batch(path)


def test_labels_must_match_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    with path.open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f, protocol=2)
    with pytest.raises(cifar10.Cifar10Error, match="1 labels for 2 images"):
        cifar10.load_batch(path)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getcwd, ())  # type: ignore[return-value]


def test_a_pickle_naming_other_globals_is_refused_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    with path.open("wb") as f:
        pickle.dump({b"data": _RunsCode(), b"labels": []}, f, protocol=2)
    with pytest.raises(cifar10.Cifar10Error, match="refusing to load global"):
        cifar10.load_batch(path)
