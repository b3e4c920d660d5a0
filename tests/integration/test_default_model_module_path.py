"""The default model keeps its accuracy through the module's own path, not only the dataset's.

The recorded accuracy is measured on the dataset's camera path (render, JPEG, INTER_AREA
shrink). The module decodes JPEGs differently (libjpeg DCT scaling, then INTER_AREA), and the
demo's camera sends fixed-size 320x240 frames. This runs camera frames through the real
module (intake, decode, preprocess, batching, ONNX Runtime, schema) and holds it to the
recorded figure, so what the demo reports is what the model card promises.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.config import ModuleConfig
from classifier.engine import InferenceEngine
from classifier.local_run import classifier_on_local_hub
from framesource.sources.synthetic import DEFAULT_SEED, make_frame
from tests.conftest import DEFAULT_MODEL
from tests.support.camera import camera_message

FRAMES = 600
# 600 frames give a standard error of about 0.9 points near 95%; three of them is the margin.
MARGIN = 0.03

pytestmark = pytest.mark.slow


async def test_camera_frames_through_the_module_match_the_recorded_accuracy() -> None:
    engine = InferenceEngine.from_path(DEFAULT_MODEL)
    recorded = float(engine.model.spec.info["accuracy"])
    config = ModuleConfig.from_env(
        {
            "MODEL_PATH": str(DEFAULT_MODEL),
            "OVERFLOW_POLICY": "block",
            "PASSTHROUGH_PROPERTIES": "truth",
        }
    )
    async with classifier_on_local_hub(config, engine) as local:
        for i in range(FRAMES):
            frame = make_frame("cam", DEFAULT_SEED, i, 320, 240, 85)
            await local.hub.deliver(camera_message(frame))
    hub = local.hub
    docs = [json.loads(m.body) for m in hub.sent["predictions"]]
    assert len(docs) == FRAMES and not hub.sent["errors"]
    correct = sum(
        d["inferences"][0]["classification"]["tag"]["value"] == d["frame"]["properties"]["truth"]
        for d in docs
    )
    accuracy = correct / FRAMES
    assert accuracy >= recorded - MARGIN, f"module path {accuracy:.3f} vs recorded {recorded:.3f}"


def test_default_model_is_the_seed_cnn_size() -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(Path(DEFAULT_MODEL)))
    # Weights and biases are float tensors; the exporter also stores a few int64 shapes.
    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    parameters = sum(numpy_helper.to_array(t).size for t in weights)
    assert parameters == 3_441_592
