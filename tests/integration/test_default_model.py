"""The committed default model still scores what it claims on the regenerated held-out split.

This needs no TensorFlow: ONNX Runtime, the generator and the recorded spec are enough. The
held-out images are generated at model size already (the camera path, including the
INTER_AREA shrink, is inside ``synthdata``), so preparing them is scale to [0, 1] and
transpose to NCHW, exactly what the spec says.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import synthdata
from classifier.model_spec import (
    METADATA_KEY,
    ChannelOrder,
    Layout,
    ModelSpec,
    OutputKind,
    ResizeMode,
)

MODEL = Path(__file__).resolve().parents[2] / "modules/classifier/models/seed-cnn-synth10.onnx"
# Five images in 10,000: room for OpenCV and ONNX Runtime picking different SIMD kernels on
# another CPU (a pixel off here, a near-tie flipped there), not for a different model.
ACCURACY_TOLERANCE = 5e-4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def spec(session: ort.InferenceSession) -> ModelSpec:
    return ModelSpec.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])


def test_default_model_file_matches_its_sha256() -> None:
    expected = MODEL.with_name(MODEL.name + ".sha256").read_text().split()
    assert expected == [hashlib.sha256(MODEL.read_bytes()).hexdigest(), MODEL.name]


def test_default_model_spec_describes_the_seed_cnn_contract(spec: ModelSpec) -> None:
    assert (spec.name, spec.version) == ("seed-cnn-synth10", "1.0.0")
    assert spec.labels == synthdata.LABELS
    assert spec.output is OutputKind.PROBABILITIES
    pre = spec.preprocessing
    assert (pre.width, pre.height, pre.layout) == (32, 32, Layout.NCHW)
    assert pre.channel_order is ChannelOrder.RGB
    assert pre.resize is ResizeMode.STRETCH
    assert pre.scale == pytest.approx(1 / 255)
    assert pre.mean == (0.0, 0.0, 0.0) and pre.std == (1.0, 1.0, 1.0)


def test_default_model_was_measured_on_this_generator_version(spec: ModelSpec) -> None:
    dataset = spec.info["dataset"]
    assert dataset["generator_version"] == synthdata.GENERATOR_VERSION
    assert dataset["test"]["seed"] == synthdata.TEST.seed
    assert dataset["test"]["size"] >= 5_000


def test_default_model_scores_its_recorded_held_out_accuracy(
    session: ort.InferenceSession, spec: ModelSpec
) -> None:
    images, labels = synthdata.TEST.generate(spec.info["dataset"]["test"]["size"])
    inputs = np.ascontiguousarray(
        (images.astype(np.float32) * np.float32(spec.preprocessing.scale)).transpose(0, 3, 1, 2)
    )
    name = session.get_inputs()[0].name
    predicted = np.concatenate(
        [session.run(None, {name: inputs[i : i + 500]})[0] for i in range(0, len(inputs), 500)]
    ).argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))

    assert accuracy == pytest.approx(spec.info["accuracy"], abs=ACCURACY_TOLERANCE)
    assert accuracy >= 0.95
