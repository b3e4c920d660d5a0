"""Loads CIFAR-10 from the "python version" batches on local disk (nothing is downloaded).

The directory is the extracted ``cifar-10-python.tar.gz``: ``data_batch_1`` .. ``data_batch_5``,
``test_batch`` and ``batches.meta``. Each batch is a pickled dict with bytes keys:
``b"data"`` a uint8 array of 10000 x 3072 rows (1024 red, then 1024 green, then 1024 blue
values, each plane row-major 32x32) and ``b"labels"`` a list of ints 0..9. ``batches.meta``
holds ``b"label_names"``.

Pickle can run arbitrary code while loading, so batches are read with an unpickler that
resolves only the few numpy globals an array needs: a tampered file fails to load instead
of executing.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
LABELS: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_SIDE = 32
_ROW_BYTES = 3 * _SIDE * _SIDE


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only callables a CIFAR batch may name: numpy's array rebuilders and bytes' codec.

    The original batches name ``numpy.core``; numpy 2 moved it to ``numpy._core`` and warns
    on the old name, so both spellings map straight to the new home. Python 3 writers of
    protocol 2 pickle bytes through ``_codecs.encode``; newer protocols use ``_frombuffer``.
    """
    import codecs

    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class Cifar10Error(ValueError):
    """The directory does not hold readable CIFAR-10 python batches."""


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 as uint8 N x 32 x 32 x 3 RGB images and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    labels: tuple[str, ...]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with path.open("rb") as f:
            # the batches were written by Python 2: bytes keys, byte strings kept as bytes
            doc = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except FileNotFoundError as e:
        raise Cifar10Error(f"missing CIFAR-10 file {path}") from e
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
        raise Cifar10Error(f"{path} is not a CIFAR-10 python batch: {e}") from e
    if not isinstance(doc, dict):
        raise Cifar10Error(f"{path} does not hold a dict")
    return doc


def rows_to_images(rows: np.ndarray) -> np.ndarray:
    """N x 3072 planar rows (R plane, G plane, B plane) to N x 32 x 32 x 3 RGB."""
    return rows.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1).copy()


def load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 images N x 32 x 32 x 3, int64 labels N)."""
    doc = _unpickle(path)
    try:
        data, labels = doc[b"data"], doc[b"labels"]
    except KeyError as e:
        raise Cifar10Error(f"{path} lacks key {e.args[0]!r}") from e
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise Cifar10Error(f"{path}: b'data' must be a 2-D uint8 array")
    if data.shape[1] != _ROW_BYTES:
        raise Cifar10Error(f"{path}: rows have {data.shape[1]} bytes, expected {_ROW_BYTES}")
    label_array = np.asarray(labels, dtype=np.int64)
    if label_array.shape != (data.shape[0],):
        raise Cifar10Error(f"{path}: {label_array.size} labels for {data.shape[0]} images")
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(LABELS)):
        raise Cifar10Error(f"{path}: labels outside 0..{len(LABELS) - 1}")
    return rows_to_images(data), label_array


def load_label_names(directory: Path) -> tuple[str, ...]:
    doc = _unpickle(directory / META_FILE)
    names = doc.get(b"label_names")
    if not isinstance(names, list) or len(names) != len(LABELS):
        raise Cifar10Error(f"{directory / META_FILE}: b'label_names' must list {len(LABELS)}")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10(directory: Path) -> Cifar10:
    """Reads all five training batches, the test batch and the label names."""
    parts = [load_batch(directory / name) for name in TRAIN_BATCHES]
    test_images, test_labels = load_batch(directory / TEST_BATCH)
    return Cifar10(
        train_images=np.concatenate([images for images, _ in parts]),
        train_labels=np.concatenate([labels for _, labels in parts]),
        test_images=test_images,
        test_labels=test_labels,
        labels=load_label_names(directory),
    )
