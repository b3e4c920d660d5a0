"""Seed CNN training and export, end to end on a few hundred synthetic images (TensorFlow)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import onnxruntime as ort

import synthdata
from classifier.model_spec import METADATA_KEY, Layout, ModelSpec, OutputKind
from cloud_tools.training import export, seed_cnn, train

pytestmark = pytest.mark.slow

TRAIN_SIZE = 320
TEST_SIZE = 200


def _train_tiny(out: Path) -> None:
    argv = [
        "--dataset=synthetic",
        f"--train-size={TRAIN_SIZE}",
        f"--test-size={TEST_SIZE}",
        "--epochs=1",
        "--seed=3",
        f"--out={out}",
        "--name=tiny-seed-cnn",
    ]
    assert train.main(argv) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run of the real CLI: 320 images, 1 epoch, exported to ONNX."""
    out = tmp_path_factory.mktemp("train") / "tiny.onnx"
    _train_tiny(out)
    return out


def _embedded_spec(path: Path) -> ModelSpec:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ModelSpec.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])


def test_seed_cnn_has_exactly_the_samples_parameter_count() -> None:
    model = seed_cnn.build_seed_cnn()
    assert model.count_params() == seed_cnn.PARAMETER_COUNT == 3_441_592
    assert tuple(model.inputs[0].shape) == (None, 3, 32, 32)


def test_exported_graph_agrees_with_keras_on_a_batch(tmp_path: Path) -> None:
    model = seed_cnn.build_seed_cnn()
    spec = ModelSpec(
        name="random-seed-cnn",
        version="0",
        labels=synthdata.LABELS,
        preprocessing=train.seed_cnn_preprocessing(),
    )
    batch = train.to_model_input(synthdata.make_dataset(16, seed=11)[0])
    report = export.export_keras_model(model, spec, tmp_path / "m.onnx", batch)

    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {report.input_name: batch})[0]
    keras_out = np.asarray(model.predict(batch, verbose=0))
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-5)
    assert report.max_abs_diff <= 1e-5


def test_exported_graph_accepts_any_batch_size(tmp_path: Path) -> None:
    model = seed_cnn.build_seed_cnn()
    spec = ModelSpec("m", "0", synthdata.LABELS, train.seed_cnn_preprocessing())
    path = tmp_path / "m.onnx"
    export.export_keras_model(model, spec, path, export.random_inputs(spec, 2))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        out = session.run(None, {"input": export.random_inputs(spec, n)})[0]
        assert out.shape == (n, 10)


def test_trained_model_spec_round_trips_through_model_spec_from_json(trained: Path) -> None:
    spec = _embedded_spec(trained)
    assert spec.name == "tiny-seed-cnn"
    assert spec.labels == synthdata.LABELS
    assert spec.output is OutputKind.PROBABILITIES
    assert spec.preprocessing == train.seed_cnn_preprocessing()
    assert spec.preprocessing.layout is Layout.NCHW
    assert spec.info["dataset"]["test"] == {
        "split": "test",
        "seed": synthdata.TEST.seed,
        "size": TEST_SIZE,
    }
    assert spec.info["training"]["seed"] == 3
    assert spec.info["parameters"] == seed_cnn.PARAMETER_COUNT


def test_recorded_accuracy_is_what_onnx_runtime_measures(trained: Path) -> None:
    spec = _embedded_spec(trained)
    images, labels = synthdata.TEST.generate(TEST_SIZE)
    predicted = train.onnx_predict(trained, train.to_model_input(images))
    assert spec.info["accuracy"] == pytest.approx(float(np.mean(predicted == labels)), abs=1e-9)
    assert set(spec.info["per_class_accuracy"]) == set(synthdata.LABELS)


def test_training_twice_with_the_same_seed_gives_the_same_model(
    trained: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again.onnx"
    _train_tiny(again)
    batch = train.to_model_input(synthdata.TEST.generate(50)[0])
    outputs = []
    for path in (trained, again):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {"input": batch})[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_sha256_file_matches_the_model_in_sha256sum_format(trained: Path) -> None:
    line = trained.with_name(trained.name + ".sha256").read_text()
    digest = hashlib.sha256(trained.read_bytes()).hexdigest()
    assert line == f"{digest}  {trained.name}\n"


def test_mobilenet_v2_exports_with_an_nhwc_spec(tmp_path: Path) -> None:
    report = export.export_mobilenet_v2(tmp_path / "mobilenetv2.onnx", seed=0)
    spec = _embedded_spec(report.path)
    pre = spec.preprocessing
    assert (pre.width, pre.height, pre.layout) == (224, 224, Layout.NHWC)
    # MobileNetV2's preprocess_input is x / 127.5 - 1
    assert pre.scale * 255 - pre.mean[0] == pytest.approx(1.0)
    assert 0 * pre.scale - pre.mean[0] == pytest.approx(-1.0)
    assert len(spec.labels) == 1000
    assert report.max_abs_diff <= export.DEFAULT_TOLERANCE
