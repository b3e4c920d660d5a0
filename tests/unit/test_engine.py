"""Models load with their spec, run in any batch size, and report the provider really in use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from classifier.engine import EngineOptions, InferenceEngine, requested_providers
from classifier.errors import ModelLoadError, ModelSpecError, ProviderError
from classifier.model_spec import Layout, ModelSpec, OutputKind
from classifier.providers import ProviderPolicy
from tests.support.tiny_models import colour_spec, write_colour_model


def red_batch(n: int, layout: Layout = Layout.NCHW) -> np.ndarray:
    batch = np.zeros((n, 3, 32, 32), np.float32)
    batch[:, 0] = 1.0
    return batch if layout is Layout.NCHW else np.ascontiguousarray(batch.transpose(0, 2, 3, 1))


def test_model_spec_is_read_from_onnx_metadata(colour_model: Path) -> None:
    engine = InferenceEngine.from_path(colour_model)
    assert engine.model.spec.labels == ("red", "green", "blue")
    assert len(engine.model.sha256) == 64
    assert engine.provider == "CPUExecutionProvider"


def test_sidecar_spec_describes_a_model_made_elsewhere(tmp_path: Path) -> None:
    path = write_colour_model(tmp_path / "bare.onnx", embed_spec=False)
    (tmp_path / "bare.onnx.json").write_text(colour_spec().to_json())
    assert InferenceEngine.from_path(path).model.spec.name == "colour-test"


def test_model_without_any_spec_is_refused_with_the_places_looked(tmp_path: Path) -> None:
    path = write_colour_model(tmp_path / "bare.onnx", embed_spec=False)
    with pytest.raises(ModelSpecError, match=r"bare\.onnx\.json"):
        InferenceEngine.from_path(path)


def test_invalid_sidecar_is_refused(tmp_path: Path) -> None:
    path = write_colour_model(tmp_path / "bare.onnx", embed_spec=False)
    doc = json.loads(colour_spec().to_json())
    doc["preprocessing"]["width"] = -3
    (tmp_path / "bare.json").write_text(json.dumps(doc))
    with pytest.raises(ModelSpecError, match="width"):
        InferenceEngine.from_path(path)


def test_spec_that_disagrees_with_the_graph_is_refused(tmp_path: Path) -> None:
    spec = colour_spec(size=32)
    path = write_colour_model(tmp_path / "m.onnx", spec=spec)
    from onnx import helper, load, save

    from classifier.model_spec import METADATA_KEY

    model = load(str(path))
    wrong = ModelSpec(spec.name, spec.version, ("a", "b"), spec.preprocessing)
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: wrong.to_json()})
    save(model, str(path))
    with pytest.raises(ModelLoadError, match="3 classes"):
        InferenceEngine.from_path(path)


def test_file_that_is_not_onnx_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"definitely not protobuf")
    with pytest.raises(ModelLoadError):
        InferenceEngine.from_path(path)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_dynamic_batch_runs_any_size(colour_model: Path, n: int) -> None:
    scores = InferenceEngine.from_path(colour_model).run(red_batch(n))
    assert scores.shape == (n, 3)
    assert np.all(scores.argmax(axis=1) == 0)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_fixed_batch_of_one_is_chunked(tmp_path: Path) -> None:
    engine = InferenceEngine.from_path(write_colour_model(tmp_path / "b1.onnx", batch=1))
    assert engine.fixed_batch == 1
    assert engine.run(red_batch(5)).shape == (5, 3)


def test_fixed_batch_of_four_is_padded(tmp_path: Path) -> None:
    engine = InferenceEngine.from_path(write_colour_model(tmp_path / "b4.onnx", batch=4))
    assert engine.run(red_batch(6)).shape == (6, 3)


def test_logit_models_are_turned_into_probabilities(tmp_path: Path) -> None:
    path = write_colour_model(tmp_path / "l.onnx", spec=colour_spec(output=OutputKind.LOGITS))
    scores = InferenceEngine.from_path(path).run(red_batch(2))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_nhwc_models_are_supported(tmp_path: Path) -> None:
    path = write_colour_model(tmp_path / "nhwc.onnx", spec=colour_spec(layout=Layout.NHWC))
    scores = InferenceEngine.from_path(path).run(red_batch(2, Layout.NHWC))
    assert np.all(scores.argmax(axis=1) == 0)


def test_auto_asks_this_build_for_its_providers_ending_in_the_cpu() -> None:
    providers = requested_providers(EngineOptions()).providers
    assert providers[-1] == "CPUExecutionProvider"
    assert set(providers) <= set(ort.get_available_providers())


def test_engine_reports_the_chain_asked_for_and_the_provider_in_use(colour_model: Path) -> None:
    engine = InferenceEngine.from_path(colour_model, EngineOptions(provider="cpu"))
    assert engine.requested == ("CPUExecutionProvider",)
    assert engine.provider == "CPUExecutionProvider"


def test_required_provider_that_is_missing_fails_loudly() -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProviderError, match="required"):
        requested_providers(EngineOptions(provider="cuda", policy=ProviderPolicy.REQUIRE))


@pytest.mark.gpu
def test_cuda_provider_is_really_used_when_required(colour_model: Path) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA execution provider on this machine")
    options = EngineOptions(provider="cuda", policy=ProviderPolicy.REQUIRE)
    engine = InferenceEngine.from_path(colour_model, options)
    assert engine.provider == "CUDAExecutionProvider"
    assert engine.run(red_batch(4)).shape == (4, 3)
