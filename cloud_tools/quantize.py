"""INT8 models: static QDQ quantisation with calibration frames, checked on held-out data.

The calibration and held-out images go through the module's own preprocessing (its
``Preprocessor`` for the model's spec), so the quantiser sees exactly the tensors the module
will feed. Sources: the synthetic generator (the default model's distribution: calibration
from the train split, held-out from the test split) or folders (calibration: any images;
held-out: one sub-folder per label, ImageNet style). The result is self-describing: the
original spec with an ``-int8`` version, and in ``info.quantization`` what was done and the
accuracy of both models on the same held-out images.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from classifier.decode import decode_frame
from classifier.decode_limits import FrameLimits
from classifier.engine import file_sha256
from classifier.frames import DecodedImage, FrameMeta, FrameRequest
from classifier.model_spec import ModelSpec
from classifier.preprocess import FloatArray, Preprocessor
from cloud_tools.errors import USAGE, CliError
from cloud_tools.model_file import embed_spec, read_spec

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass(frozen=True)
class QuantizeReport:
    path: Path
    sha256: str
    spec: ModelSpec
    fp32_accuracy: float
    int8_accuracy: float
    held_out: int
    calibration: int

    @property
    def accuracy_loss_points(self) -> float:
        return 100.0 * (self.fp32_accuracy - self.int8_accuracy)


def synthetic_tensors(pre: Preprocessor, split: str, count: int) -> tuple[FloatArray, np.ndarray]:
    """Tensors and labels from the synthetic generator's named split, at the model's size."""
    import synthdata

    source = synthdata.TRAIN if split == "train" else synthdata.TEST
    size = max(pre.spec.width, pre.spec.height)
    images, labels = source.generate(count, size=size)
    batch = np.stack(
        [pre(DecodedImage(np.ascontiguousarray(im), "RGB", size, size)) for im in images]
    )
    return batch, labels


def folder_tensors(
    pre: Preprocessor, folder: Path, labels: tuple[str, ...] | None, count: int
) -> tuple[FloatArray, np.ndarray]:
    """Tensors from image files (decoded as frames are); with ``labels``, one sub-folder per
    label gives each image its class, and a sub-folder that is no label is an error."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)[:count]
    if not files:
        raise CliError(f"no images in {folder}", USAGE)
    tensors, classes = [], []
    for path in files:
        request = FrameRequest(FrameMeta(frame_id=path.name), path.read_bytes())
        tensors.append(pre(decode_frame(request, FrameLimits(), pre.spec)))
        if labels is not None:
            label = path.parent.name
            if label not in labels:
                raise CliError(f"{path}: folder {label!r} is not one of the model's labels", USAGE)
            classes.append(labels.index(label))
    return np.stack(tensors), np.asarray(classes, dtype=np.int64)


class _Calibration(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, input_name: str, batch: FloatArray, chunk: int = 32) -> None:
        self._chunks: Iterator[FloatArray] = iter(
            [batch[i : i + chunk] for i in range(0, len(batch), chunk)]
        )
        self._input_name = input_name

    def get_next(self) -> dict[str, FloatArray] | None:
        chunk = next(self._chunks, None)
        return None if chunk is None else {self._input_name: chunk}


def accuracy(path: Path, tensors: FloatArray, labels: np.ndarray, threads: int = 0) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    predicted = np.concatenate(
        [
            np.asarray(session.run(None, {name: tensors[i : i + 256]})[0]).argmax(axis=1)
            for i in range(0, len(tensors), 256)
        ]
    )
    return float(np.mean(predicted == labels))


def quantize_model(
    source: Path,
    out: Path,
    calibration: tuple[FloatArray, str],
    held_out: tuple[FloatArray, np.ndarray, str],
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    method: str = "minmax",
) -> QuantizeReport:
    spec = read_spec(source)
    calibration_batch, calibration_source = calibration
    held_tensors, held_labels, held_source = held_out
    input_name = (
        ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    )
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory() as work:
        quantized = Path(work) / "int8.onnx"
        # ONNX Runtime's recommended preparation: shape inference and graph optimisation, so
        # the quantiser sees fused nodes (symbolic shapes are not needed for fixed-rank CNNs).
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source.resolve()), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            _Calibration(input_name, calibration_batch),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            calibrate_method=methods[method],
        )
        fp32 = accuracy(source, held_tensors, held_labels)
        int8 = accuracy(quantized, held_tensors, held_labels)
        info: dict[str, Any] = dict(spec.info)
        info["quantization"] = {
            "format": "QDQ",
            "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": "uint8",
            "reduce_range": reduce_range,
            "calibration": {
                "method": method,
                "images": len(calibration_batch),
                "source": calibration_source,
            },
            "held_out": {"images": len(held_labels), "source": held_source},
            "fp32_accuracy": fp32,
            "int8_accuracy": int8,
            "from_sha256": file_sha256(source),
        }
        if "accuracy" in info:
            info["accuracy"] = int8
        new_spec = replace(spec, version=f"{spec.version}-int8", info=info)
        digest = embed_spec(quantized, new_spec, out)
    return QuantizeReport(
        out, digest, new_spec, fp32, int8, len(held_labels), len(calibration_batch)
    )
