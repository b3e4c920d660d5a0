"""Trains the seed CNN, measures it on held-out data and exports a self-describing ONNX file.

    python -m cloud_tools.train --dataset synthetic --train-size 40000 --epochs 10 \\
        --seed 0 --out modules/classifier/models/seed-cnn-synth10.onnx

The recipe is the sample's (SGD, learning rate 0.01, momentum 0.9, batch 64). Runs are
seeded and TensorFlow's op determinism is on, so the same command on the same machine type
gives the same weights. The held-out accuracy written into the file is measured by ONNX
Runtime on the exported graph, i.e. by the runtime the module uses, not by Keras.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnxruntime as ort
import tensorflow as tf
import tf2onnx

import synthdata
from classifier.model_spec import (
    ChannelOrder,
    Layout,
    ModelSpec,
    OutputKind,
    Preprocessing,
    ResizeMode,
)
from cloud_tools.model_file import ModelFileError, embed_spec
from cloud_tools.training import cifar10
from cloud_tools.training.export import OPSET, ExportError, export_keras_model
from cloud_tools.training.seed_cnn import (
    INPUT_SHAPE,
    WeightsMismatchError,
    build_seed_cnn,
    compile_like_the_seed,
    load_weights_from_onnx,
)

ARCHITECTURE = (
    "seed CNN from Microsoft's 'Deploying Deep Learning Models on Kubernetes and Azure IoT "
    "Edge' sample: 2x Conv(50) / pool / 2x Conv(100) / pool / Dense(512) / Dense(10)"
)


@dataclass(frozen=True)
class Data:
    train_images: np.ndarray  # uint8 N x 32 x 32 x 3 RGB
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    labels: tuple[str, ...]
    description: dict[str, Any]


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB to the seed CNN's float32 NCHW in [0, 1] (its spec's preprocessing)."""
    scaled = images.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def seed_cnn_preprocessing() -> Preprocessing:
    return Preprocessing(
        width=INPUT_SHAPE[2],
        height=INPUT_SHAPE[1],
        layout=Layout.NCHW,
        channel_order=ChannelOrder.RGB,
        scale=1.0 / 255.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        resize=ResizeMode.STRETCH,
    )


def load_synthetic(train_size: int, test_size: int) -> Data:
    train_x, train_y = synthdata.TRAIN.generate(train_size)
    test_x, test_y = synthdata.TEST.generate(test_size)
    return Data(
        train_x,
        train_y,
        test_x,
        test_y,
        synthdata.LABELS,
        {
            "name": "synthdata-shapes10",
            "generator_version": synthdata.GENERATOR_VERSION,
            "train": {"split": "train", "seed": synthdata.TRAIN.seed, "size": train_size},
            "test": {"split": "test", "seed": synthdata.TEST.seed, "size": test_size},
            "frames": {
                "long_side_px": list(synthdata.FRAME_LONG_SIDE_PX),
                "jpeg_probability": synthdata.JPEG_PROBABILITY,
                "jpeg_quality": list(synthdata.JPEG_QUALITY_RANGE),
                "shrink": "cv2.resize INTER_AREA, stretched to 32x32",
            },
        },
    )


def load_cifar(directory: Path, train_size: int | None, test_size: int | None) -> Data:
    data = cifar10.load_cifar10(directory)
    train_y, test_y = data.train_labels[:train_size], data.test_labels[:test_size]
    return Data(
        data.train_images[: len(train_y)],
        train_y,
        data.test_images[: len(test_y)],
        test_y,
        data.labels,
        {"name": "cifar10", "train": {"size": len(train_y)}, "test": {"size": len(test_y)}},
    )


def accuracy_report(
    predicted: np.ndarray, truth: np.ndarray, labels: tuple[str, ...]
) -> tuple[float, dict[str, float | None]]:
    """Overall and per-class accuracy as plain floats (they go into JSON; None: no samples)."""
    overall = float(np.mean(predicted == truth))
    per_class = {
        name: float(np.mean(predicted[truth == i] == i)) if np.any(truth == i) else None
        for i, name in enumerate(labels)
    }
    return overall, per_class


def onnx_predict(path: Path, inputs: np.ndarray, batch: int = 500) -> np.ndarray:
    """Class indices from ONNX Runtime on the CPU, the runtime the module uses."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    chunks = [
        session.run(None, {name: inputs[i : i + batch]})[0] for i in range(0, len(inputs), batch)
    ]
    predicted: np.ndarray = np.concatenate(chunks).argmax(axis=1)
    return predicted


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cloud_tools.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--dataset", choices=("synthetic", "cifar10"), required=True)
    p.add_argument("--data-dir", type=Path, help="CIFAR-10 python batches (cifar10 only)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-size", type=int, help="synthetic: required; cifar10: default all")
    p.add_argument("--test-size", type=int, help="default: the whole held-out split")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", help="model name (default: seed-cnn-synth10 / seed-cnn-cifar10)")
    p.add_argument("--version", default="1.0.0")
    p.add_argument(
        "--init-from",
        type=Path,
        help="start from the weights of a seed CNN ONNX file (fine-tuning), e.g. the default model",
    )
    args = p.parse_args(argv)
    if args.dataset == "cifar10" and args.data_dir is None:
        p.error("--dataset cifar10 needs --data-dir")
    if args.dataset == "synthetic" and args.train_size is None:
        p.error("--dataset synthetic needs --train-size")
    for flag in ("epochs", "train_size", "test_size", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1")
    too_many = args.test_size is not None and args.test_size > synthdata.TEST.size
    if args.dataset == "synthetic" and too_many:
        p.error(f"--test-size is at most {synthdata.TEST.size} for the synthetic split")
    return args


def _log(message: str) -> None:
    print(f"[train {time.strftime('%H:%M:%S')}] {message}", flush=True)


def train(args: argparse.Namespace) -> ModelSpec:
    keras.utils.set_random_seed(args.seed)
    # deterministic kernels: the same command reproduces the same weights on the same CPU
    tf.config.experimental.enable_op_determinism()

    started = time.monotonic()
    if args.dataset == "synthetic":
        data = load_synthetic(args.train_size, args.test_size or synthdata.TEST.size)
    else:
        data = load_cifar(args.data_dir, args.train_size, args.test_size)
    data_s = time.monotonic() - started
    _log(
        f"data ready in {data_s:.0f} s: {len(data.train_labels)} train, "
        f"{len(data.test_labels)} held-out"
    )

    x_train, x_test = to_model_input(data.train_images), to_model_input(data.test_images)
    model = build_seed_cnn(len(data.labels))
    if args.init_from is not None:
        load_weights_from_onnx(model, args.init_from)
        _log(f"starting from the weights of {args.init_from}")
    compile_like_the_seed(model, args.learning_rate)
    fit_started = time.monotonic()
    history = model.fit(
        x_train,
        data.train_labels,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=2,
    )
    fit_s = time.monotonic() - fit_started
    _log(f"trained {args.epochs} epochs in {fit_s:.0f} s")

    keras_pred = np.asarray(model.predict(x_test, batch_size=500, verbose=0)).argmax(axis=1)
    keras_acc, _ = accuracy_report(keras_pred, data.test_labels, data.labels)
    default_name = "seed-cnn-synth10" if args.dataset == "synthetic" else "seed-cnn-cifar10"
    spec = ModelSpec(
        name=args.name or default_name,
        version=args.version,
        labels=data.labels,
        preprocessing=seed_cnn_preprocessing(),
        output=OutputKind.PROBABILITIES,
        info={
            "architecture": ARCHITECTURE,
            "parameters": int(model.count_params()),
            "dataset": data.description,
            "keras_accuracy": keras_acc,
            "training": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "optimizer": "SGD",
                "learning_rate": args.learning_rate,
                "momentum": 0.9,
                "loss": "sparse_categorical_crossentropy",
                "seed": args.seed,
                "initial_weights": str(args.init_from.name) if args.init_from else None,
                "op_determinism": True,
                "final_train_accuracy": float(history.history["accuracy"][-1]),
                "fit_duration_s": round(fit_s, 1),
                "machine": f"{platform.machine()}, {_cpu_count()} CPU cores",
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "tf2onnx": tf2onnx.__version__,
                "onnxruntime": ort.__version__,
                "opset": OPSET,
            },
        },
    )
    report = export_keras_model(model, spec, args.out, x_test[:256])
    _log(report.summary())

    onnx_pred = onnx_predict(args.out, x_test)
    accuracy, per_class = accuracy_report(onnx_pred, data.test_labels, data.labels)
    final = replace(
        spec,
        info={
            **spec.info,
            "accuracy": accuracy,
            "accuracy_measured_by": "onnxruntime CPU on the exported file",
            "per_class_accuracy": per_class,
            "export_max_abs_diff": report.max_abs_diff,
        },
    )
    digest = embed_spec(args.out, final)
    _print_summary(final, args.out, digest, per_class, fit_s, time.monotonic() - started)
    return final


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def _print_summary(
    spec: ModelSpec,
    out: Path,
    digest: str,
    per_class: dict[str, float | None],
    fit_s: float,
    total_s: float,
) -> None:
    print(f"model      {spec.name} {spec.version} -> {out}")
    print(f"sha256     {digest}")
    print(
        f"held-out   {spec.info['accuracy']:.4f} (ONNX Runtime), "
        f"{spec.info['keras_accuracy']:.4f} (Keras)"
    )
    for label, value in per_class.items():
        print(f"  {label:<12} {'n/a' if value is None else f'{value:.4f}'}")
    print(
        f"time       fit {fit_s:.0f} s, total {total_s:.0f} s on {spec.info['training']['machine']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        train(args)
    except (ExportError, ModelFileError, cifar10.Cifar10Error, WeightsMismatchError) as e:
        print(f"training failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
