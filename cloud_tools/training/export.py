"""Keras model -> self-describing ONNX file, checked against Keras before it is trusted.

The export path is tf2onnx's ``convert.from_function`` at opset 17 with a free batch
dimension: Keras 3's own ONNX export needs the model called first and tf2onnx 1.16 would
drag protobuf, TF and onnx backwards (docs in shared/design/iot-edge-facts.md, section 6).

Each file carries its ``ModelSpec`` as JSON in the ONNX metadata under ``METADATA_KEY``, so
the module needs nothing but the file. An export is only reported as done after ONNX
Runtime has loaded the written file, produced the Keras model's outputs on a batch to
within a tolerance, and handed back the same spec.

CLI (from the repository root)::

    python -m cloud_tools.training.export mobilenetv2 --out build/mobilenetv2.onnx
    python -m cloud_tools.training.export keras --model m.keras --spec spec.json --out m.onnx
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

from classifier.model_spec import (
    METADATA_KEY,
    ChannelOrder,
    Layout,
    ModelSpec,
    OutputKind,
    Preprocessing,
    ResizeMode,
)
from cloud_tools.model_file import (
    ModelFileError,
    check_embedded_spec,
    save_atomically,
    session,
    write_sha256,
)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"
# float32 kernels differ between TF and ONNX Runtime by rounding only; anything larger is a
# conversion fault (a wrong transpose or a dropped op), not noise
DEFAULT_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The ONNX file could not be produced, or does not behave like the Keras model."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    sha256: str
    max_abs_diff: float
    checked_samples: int
    opset: int
    input_name: str
    output_name: str

    def summary(self) -> str:
        return (
            f"wrote {self.path} (sha256 {self.sha256[:16]}...), opset {self.opset}, "
            f"{self.input_name} -> {self.output_name}; ONNX Runtime vs Keras on "
            f"{self.checked_samples} samples: max |diff| = {self.max_abs_diff:.2e}"
        )


def random_inputs(spec: ModelSpec, count: int, seed: int = 0) -> np.ndarray:
    """Random pixels put through the spec's preprocessing: a batch in the model's domain."""
    pre = spec.preprocessing
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, pre.height, pre.width, pre.channels)).astype(np.float32)
    values = (pixels * pre.scale - np.asarray(pre.mean, np.float32)) / np.asarray(
        pre.std, np.float32
    )
    if pre.layout is Layout.NCHW:
        values = values.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(values, dtype=np.float32)


def _to_onnx(model: keras.Model, opset: int) -> onnx.ModelProto:
    shape = tuple(model.inputs[0].shape[1:])
    signature = (tf.TensorSpec((None, *shape), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def serve(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False)

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    except Exception as e:
        raise ExportError(f"tf2onnx could not convert {model.name}: {e}") from e
    result: onnx.ModelProto = proto
    return result


def _name_output(proto: onnx.ModelProto) -> None:
    # tf2onnx names the output after the TF tensor ("Identity:0"); give it a stable name
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
    proto.graph.output[0].name = OUTPUT_NAME


def _name_batch_dimension(proto: onnx.ModelProto) -> None:
    # tf2onnx names the free dimension "unk__N"; a stable name reads better in tools
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def export_keras_model(
    model: keras.Model,
    spec: ModelSpec,
    out_path: Path,
    sample: np.ndarray,
    *,
    opset: int = OPSET,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Converts, embeds ``spec``, writes ``out_path`` (+ ``.sha256``) and verifies the file.

    ``sample`` is a float32 batch in the model's input layout, already preprocessed; real
    data is the better check, ``random_inputs(spec, n)`` will do for untrained models.
    """
    if sample.ndim != len(model.inputs[0].shape) or sample.shape[0] == 0:
        raise ExportError(f"sample batch of shape {sample.shape} does not fit {model.name}")
    proto = _to_onnx(model, opset)
    _name_output(proto)
    _name_batch_dimension(proto)
    onnx.helper.set_model_props(proto, {METADATA_KEY: spec.to_json()})
    proto.doc_string = f"{spec.name} {spec.version}"
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"converted model fails the ONNX checker: {e}") from e

    save_atomically(proto, out_path)

    max_diff, input_name, output_name = _verify(model, spec, out_path, sample, tolerance)
    digest = write_sha256(out_path)
    return ExportReport(
        path=out_path,
        sha256=digest,
        max_abs_diff=max_diff,
        checked_samples=int(sample.shape[0]),
        opset=opset,
        input_name=input_name,
        output_name=output_name,
    )


def _verify(
    model: keras.Model, spec: ModelSpec, path: Path, sample: np.ndarray, tolerance: float
) -> tuple[float, str, str]:
    loaded = session(path)
    try:
        check_embedded_spec(loaded, spec, path)
    except ModelFileError as e:
        raise ExportError(str(e)) from e
    input_name = loaded.get_inputs()[0].name
    output_name = loaded.get_outputs()[0].name
    batch = np.ascontiguousarray(sample, dtype=np.float32)
    onnx_out = loaded.run([output_name], {input_name: batch})[0]
    keras_out = np.asarray(model.predict(batch, verbose=0))
    if onnx_out.shape != keras_out.shape:
        raise ExportError(f"ONNX output {onnx_out.shape} differs from Keras {keras_out.shape}")
    max_diff = float(np.max(np.abs(onnx_out - keras_out)))
    if not max_diff <= tolerance:
        raise ExportError(f"ONNX Runtime differs from Keras by {max_diff:.3g} > {tolerance}")
    return max_diff, input_name, output_name


def mobilenet_v2_spec(seed: int) -> ModelSpec:
    """Spec for a randomly initialised ImageNet-shaped MobileNetV2 (benchmark use only)."""
    return ModelSpec(
        name="mobilenetv2-random",
        version="0.0.0",
        labels=tuple(f"class_{i:03d}" for i in range(1000)),
        # keras.applications.mobilenet_v2.preprocess_input: x / 127.5 - 1, RGB, NHWC
        preprocessing=Preprocessing(
            width=224,
            height=224,
            layout=Layout.NHWC,
            channel_order=ChannelOrder.RGB,
            scale=1.0 / 127.5,
            mean=(1.0, 1.0, 1.0),
            std=(1.0, 1.0, 1.0),
            resize=ResizeMode.STRETCH,
        ),
        output=OutputKind.PROBABILITIES,
        info={
            "architecture": "keras.applications.MobileNetV2(alpha=1.0, 224x224)",
            "weights": f"random initialisation, keras seed {seed}; predictions are meaningless",
            "purpose": "benchmarking a realistic ImageNet-sized network",
        },
    )


def export_mobilenet_v2(out_path: Path, seed: int = 0) -> ExportReport:
    """Builds MobileNetV2 with random weights (nothing is downloaded) and exports it."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    spec = mobilenet_v2_spec(seed)
    return export_keras_model(model, spec, out_path, random_inputs(spec, 4, seed))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cloud_tools.training.export")
    sub = parser.add_subparsers(dest="command", required=True)
    mobilenet = sub.add_parser("mobilenetv2", help="random-weight MobileNetV2 for benchmarks")
    mobilenet.add_argument("--out", type=Path, required=True)
    mobilenet.add_argument("--seed", type=int, default=0)
    saved = sub.add_parser("keras", help="a saved .keras model plus a model spec JSON file")
    saved.add_argument("--model", type=Path, required=True)
    saved.add_argument("--spec", type=Path, required=True)
    saved.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        if args.command == "mobilenetv2":
            report = export_mobilenet_v2(args.out, args.seed)
        else:
            spec = ModelSpec.from_json(args.spec.read_text())
            model = keras.models.load_model(args.model)
            report = export_keras_model(model, spec, args.out, random_inputs(spec, 8))
    except ExportError as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
