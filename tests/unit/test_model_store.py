"""The model store: swaps between batches, probation, promotion and fallback."""

from __future__ import annotations

from pathlib import Path

from classifier.engine import InferenceEngine
from classifier.model_store import ModelStore, ServingModel
from tests.support.tiny_models import write_colour_model


def model(tmp_path: Path, name: str) -> ServingModel:
    return ServingModel.from_engine(InferenceEngine.from_path(write_colour_model(tmp_path / name)))


def test_a_swap_keeps_the_previous_model_loaded_on_probation(tmp_path: Path) -> None:
    old, new = model(tmp_path, "a.onnx"), model(tmp_path, "b.onnx")
    store = ModelStore(old, probation_frames=10)
    assert store.swap(new) is old
    assert store.current is new
    assert store.previous is old
    assert store.on_probation


def test_enough_frames_scored_promote_and_release_the_previous(tmp_path: Path) -> None:
    old, new = model(tmp_path, "a.onnx"), model(tmp_path, "b.onnx")
    store = ModelStore(old, probation_frames=10)
    promoted: list[tuple[ServingModel, ServingModel | None]] = []
    store.on_promoted = lambda m, released: promoted.append((m, released))
    store.swap(new)
    store.served(new, 6)
    assert store.on_probation
    store.served(old, 50)  # frames of a batch that started before the swap do not count
    assert store.on_probation
    store.served(new, 4)
    assert not store.on_probation
    assert store.previous is None
    assert promoted == [(new, old)]


def test_a_failure_on_probation_restores_the_previous_model(tmp_path: Path) -> None:
    old, new = model(tmp_path, "a.onnx"), model(tmp_path, "b.onnx")
    store = ModelStore(old)
    fell_back: list[str] = []
    store.on_fallback = lambda failed, restored, reason: fell_back.append(reason)
    store.swap(new)
    assert store.inference_failed(new, "boom") is old
    assert store.current is old
    assert fell_back == ["boom"]
    assert not store.on_probation


def test_a_failure_after_promotion_has_nothing_to_fall_back_to(tmp_path: Path) -> None:
    old, new = model(tmp_path, "a.onnx"), model(tmp_path, "b.onnx")
    store = ModelStore(old, probation_frames=1)
    store.swap(new)
    store.served(new, 1)
    assert store.inference_failed(new, "boom") is None
    assert store.current is new


def test_a_probation_of_zero_seconds_promotes_at_the_first_batch(tmp_path: Path) -> None:
    old, new = model(tmp_path, "a.onnx"), model(tmp_path, "b.onnx")
    store = ModelStore(old, probation_frames=1000, probation_s=0.0)
    store.swap(new)
    store.served(new, 1)
    assert not store.on_probation
