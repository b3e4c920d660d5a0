"""Inference lanes: which models get them, and that a module in lanes still gives every frame
exactly one outcome, in the order the frames came, with the real pipeline and ONNX Runtime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from classifier.config import ModuleConfig
from classifier.engine import EngineOptions, InferenceEngine
from classifier.inference_lanes import (
    MAX_LANE_INPUT_PIXELS,
    auto_lanes,
    lanes_for_model,
)
from classifier.outcome_stage import Outcome
from tests.integration.model_update_support import ModuleUnderTest
from tests.support.tiny_models import colour_spec, write_colour_model, write_slow_colour_model
from tests.support.watched_runs import WatchedRuns


def intra_op_threads(engine: InferenceEngine) -> int:
    return int(engine.session.get_session_options().intra_op_num_threads)


def test_the_auto_rule_gives_lanes_to_small_cpu_models_on_small_machines_only() -> None:
    assert auto_lanes(0, cores=1) == 1
    assert auto_lanes(0, cores=2) == 2
    assert auto_lanes(0, cores=4) == 4
    assert auto_lanes(0, cores=16) == 1  # a lone frame would run on one of 16 cores
    assert auto_lanes(3, cores=2) == 1  # INTRA_OP_THREADS set: the operator chose
    small, large = 32 * 32, MAX_LANE_INPUT_PIXELS + 1
    assert lanes_for_model(None, "CPUExecutionProvider", small, 0) == auto_lanes(0)
    assert lanes_for_model(None, "CPUExecutionProvider", large, 0) == 1
    assert lanes_for_model(None, "CUDAExecutionProvider", small, 0) == 1
    assert lanes_for_model(3, "CPUExecutionProvider", large, 0) == 3
    assert lanes_for_model(3, "TensorrtExecutionProvider", small, 0) == 1


def test_a_small_model_loads_single_threaded_into_lanes_and_a_large_one_on_every_core(
    tmp_path: Path,
) -> None:
    small = InferenceEngine.from_path(
        write_colour_model(tmp_path / "small.onnx"), EngineOptions(lanes=None)
    )
    assert small.lanes == auto_lanes(0)
    assert intra_op_threads(small) == (1 if small.lanes > 1 else 0)
    large = InferenceEngine.from_path(
        write_colour_model(tmp_path / "large.onnx", colour_spec(size=224)),
        EngineOptions(lanes=None),
    )
    assert large.lanes == 1
    assert intra_op_threads(large) == 0
    forced = InferenceEngine.from_path(tmp_path / "large.onnx", EngineOptions(lanes=3))
    assert forced.lanes == 3
    assert intra_op_threads(forced) == 1
    # The default for every other user of the engine (tools, benchmarks): no lanes, and
    # every core for the one run.
    plain = InferenceEngine.from_path(tmp_path / "small.onnx")
    assert (plain.lanes, intra_op_threads(plain)) == (1, 0)
    two = InferenceEngine.from_path(tmp_path / "small.onnx", EngineOptions(intra_op_threads=2))
    assert (two.lanes, intra_op_threads(two)) == (1, 2)


def test_the_module_reads_inference_lanes_from_its_environment() -> None:
    base = {"MODEL_PATH": "/m.onnx"}
    assert ModuleConfig.from_env(base).engine.lanes is None
    assert ModuleConfig.from_env(base | {"INFERENCE_LANES": "auto"}).engine.lanes is None
    config = ModuleConfig.from_env(base | {"INFERENCE_LANES": "3"})
    assert (config.engine.lanes, config.pipeline.inference_lanes) == (3, 3)
    for bad in ("0", "65", "two"):
        with pytest.raises(Exception, match="INFERENCE_LANES"):
            ModuleConfig.from_env(base | {"INFERENCE_LANES": bad})


@pytest.mark.timeout(120)
async def test_frames_scored_in_three_lanes_get_one_outcome_each_in_arrival_order(
    tmp_path: Path,
) -> None:
    # A model slow enough (matrix products in every run) that the lanes' runs overlap and
    # finish out of order; small batches so there are many of them.
    model = write_slow_colour_model(tmp_path / "slow.onnx", "1.0.0", iterations=3)
    env = {"INFERENCE_LANES": "3", "MAX_BATCH": "4", "QUEUE_CAPACITY": "400"}
    async with ModuleUnderTest(model, tmp_path / "cache", **env) as m:
        pipeline = m.module.pipeline
        engine = pipeline.store.current.engine
        assert engine.lanes == 3
        runs = WatchedRuns(engine)
        handed_on: list[str] = []
        put = pipeline._outcomes.put

        def recorded_put(outcomes: Sequence[Outcome]) -> None:
            handed_on.extend(o.meta.frame_id for o in outcomes)
            put(outcomes)

        pipeline._outcomes.put = recorded_put  # type: ignore[method-assign]
        await m.send(300)
        await m.settle()
        expected = [f"f{i:06d}" for i in range(1, 301)]
        assert m.errors() == []
        assert handed_on == expected  # in arrival order, whichever lane finished first
        assert sorted(d["frame"]["id"] for d in m.predictions()) == expected
        assert runs.most >= 2, "the lanes never ran at the same time"
        assert {d["inferences"][0]["classification"]["tag"]["value"] for d in m.predictions()} == {
            "red"
        }
        sizes = m.module.pipeline.metrics.export().sizes["batch_size"]
        assert sum(size * n for size, n in sizes.items()) == 300


def test_models_that_cannot_get_lanes_are_loaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[int] = []
    load = InferenceEngine._load.__func__  # type: ignore[attr-defined]

    def counted(
        cls: type[InferenceEngine], path: Path, options: EngineOptions, threads: int
    ) -> Any:
        loads.append(threads)
        return load(cls, path, options, threads)

    monkeypatch.setattr(InferenceEngine, "_load", classmethod(counted))
    small = write_colour_model(tmp_path / "small.onnx")
    large = write_colour_model(tmp_path / "large.onnx", colour_spec(size=224))
    # A machine where auto gives no lanes (16 cores): one load, on every core.
    monkeypatch.setattr("classifier.inference_lanes.usable_cores", lambda: 16)
    assert InferenceEngine.from_path(small, EngineOptions(lanes=None)).lanes == 1
    assert loads == [0]
    # Where it does (2 cores): a small model once, single-threaded; a large one twice.
    monkeypatch.setattr("classifier.inference_lanes.usable_cores", lambda: 2)
    loads.clear()
    assert InferenceEngine.from_path(small, EngineOptions(lanes=None)).lanes == 2
    assert loads == [1]
    loads.clear()
    assert InferenceEngine.from_path(large, EngineOptions(lanes=None)).lanes == 1
    assert loads == [1, 0]
