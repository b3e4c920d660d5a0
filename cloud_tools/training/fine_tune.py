"""Fine-tunes a seed CNN on labelled captures, with replayed synthetic data so it does not
forget what it knew, and exports it as a self-describing ONNX file.

    python -m cloud_tools train --init-from modules/classifier/models/seed-cnn-synth10.onnx \\
        --labels data/labels.jsonl --out build/seed-cnn-1.1.0.onnx --version 1.1.0

The held-out fifth of the labelled captures (``captures.is_held_out``) is never trained on;
the accuracy before and after on it, and on the synthetic held-out split, is measured by ONNX
Runtime on the exported file and written into its spec. Replay: each epoch mixes the
captures (repeated until they are at least a third of the data) with ``replay`` samples of
the synthetic training split, the distribution the model first learnt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import synthdata
from cloud_tools.dataset.captures import labelled, read_image
from cloud_tools.errors import USAGE, CliError
from cloud_tools.model_file import embed_spec, read_spec
from cloud_tools.training.export import export_keras_model
from cloud_tools.training.seed_cnn import (
    build_seed_cnn,
    compile_like_the_seed,
    load_weights_from_onnx,
)
from cloud_tools.training.train import accuracy_report, onnx_predict, to_model_input

# Synthetic held-out samples every evaluation uses (a prefix of synthdata.TEST).
SYNTHETIC_EVAL = 2_000


@dataclass(frozen=True)
class LabelledImages:
    train_x: np.ndarray  # uint8 N x 32 x 32 x 3 RGB
    train_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray


@dataclass(frozen=True)
class FineTuneSettings:
    init_from: Path
    labels: Path  # the dataset folder's labels.jsonl
    out: Path
    version: str
    replay: int = 3_000
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 0.005
    seed: int = 0


def load_labelled(folder: Path, classes: tuple[str, ...]) -> LabelledImages:
    """The labelled captures of a dataset folder, split into training and held-out parts."""
    index = {name: i for i, name in enumerate(classes)}
    parts: dict[bool, tuple[list[np.ndarray], list[int]]] = {True: ([], []), False: ([], [])}
    for capture, label in labelled(folder):
        if label not in index:
            raise CliError(f"{capture.key}: label {label!r} is not one of the model's classes")
        images, targets = parts[capture.held_out]
        images.append(read_image(capture.frame_path))
        targets.append(index[label])
    if not parts[False][0]:
        raise CliError(f"no labelled captures to train on in {folder}", USAGE)

    def stack(held: bool) -> tuple[np.ndarray, np.ndarray]:
        images, targets = parts[held]
        shape = (len(images), 32, 32, 3)
        x = np.stack(images) if images else np.empty(shape, np.uint8)
        return x, np.asarray(targets, np.int64)

    (train_x, train_y), (held_x, held_y) = stack(False), stack(True)
    return LabelledImages(train_x, train_y, held_x, held_y)


def accuracy(model_path: Path, images: np.ndarray, labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    predicted = onnx_predict(model_path, to_model_input(images))
    return float(np.mean(predicted == labels))


def fine_tune(settings: FineTuneSettings) -> dict[str, Any]:
    """Trains, exports and measures; returns the figures (also written into the spec)."""
    started = time.monotonic()
    spec = read_spec(settings.init_from)
    data = load_labelled(settings.labels.parent, spec.labels)
    replay_x, replay_y = synthdata.TRAIN.generate(settings.replay)
    repeats = max(1, int(np.ceil(len(replay_y) / (2 * len(data.train_y)))))
    x = np.concatenate([np.tile(data.train_x, (repeats, 1, 1, 1)), replay_x])
    y = np.concatenate([np.tile(data.train_y, repeats), replay_y])
    test_x, test_y = synthdata.TEST.generate(SYNTHETIC_EVAL)

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_seed_cnn(len(spec.labels))
    load_weights_from_onnx(model, settings.init_from)
    compile_like_the_seed(model, settings.learning_rate)
    fit_started = time.monotonic()
    model.fit(
        to_model_input(x),
        y,
        batch_size=settings.batch_size,
        epochs=settings.epochs,
        shuffle=True,
        verbose=2,
    )
    fit_s = time.monotonic() - fit_started
    figures: dict[str, Any] = {
        "captures_train": len(data.train_y),
        "captures_held_out": len(data.held_y),
        "replay": settings.replay,
        "epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "initial_weights": settings.init_from.name,
        "fit_duration_s": round(fit_s, 1),
        "before": {
            "captures_held_out": accuracy(settings.init_from, data.held_x, data.held_y),
            "synthetic_held_out": accuracy(settings.init_from, test_x, test_y),
        },
    }
    new_spec = replace(spec, version=settings.version)
    export_keras_model(model, new_spec, settings.out, to_model_input(test_x[:256]))
    figures["after"] = {
        "captures_held_out": accuracy(settings.out, data.held_x, data.held_y),
        "synthetic_held_out": accuracy(settings.out, test_x, test_y),
    }
    predicted = onnx_predict(settings.out, to_model_input(test_x))
    synthetic, _ = accuracy_report(predicted, test_y, spec.labels)
    info = {**spec.info, "accuracy": synthetic, "fine_tuning": figures}
    info["dataset"] = {**spec.info.get("dataset", {}), "test": _test_description()}
    figures["sha256"] = embed_spec(settings.out, replace(new_spec, info=info))
    figures["total_s"] = round(time.monotonic() - started, 1)
    return figures


def _test_description() -> dict[str, Any]:
    return {"split": "test", "seed": synthdata.TEST.seed, "size": SYNTHETIC_EVAL}
