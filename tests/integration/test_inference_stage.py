"""The inference stage with the real pipeline and ONNX Runtime. The staged batch: a model that
takes turns starts its next batch from the inference thread the moment a run ends, not when
the event loop next gets to it; still one at a time, and every frame still gets one outcome,
in order. A batch whose decoding fails outright costs its own frames only."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from classifier.engine import EngineOptions, InferenceEngine
from classifier.errors import FrameErrorCode
from classifier.frame_queue import OverflowPolicy
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.outcome_stage import Outcome
from classifier.pipeline import Pipeline, PipelineConfig
from classifier.predictions import FrameFailure, Prediction
from edge_module.hub import InboundMessage
from tests.integration.model_update_support import RED_JPEG
from tests.support.tiny_models import write_slow_colour_model
from tests.support.watched_runs import WatchedRuns

BLOCKED_S = 0.3  # how long the event loop is kept busy after a chosen run
STAGE_TIME_S = 0.2  # how long that run lasts
FRAMES = 80


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lanes", [1, 3])
async def test_the_next_batch_runs_while_the_event_loop_is_busy_and_turns_are_kept(
    tmp_path: Path, lanes: int
) -> None:
    model = write_slow_colour_model(tmp_path / "slow.onnx", "1.0.0", iterations=2)
    engine = InferenceEngine.from_path(model, EngineOptions(lanes=1))
    # One lane, or three for a model that takes turns (as INFERENCE_LANES=auto on a small
    # machine with a large model): its batches must still run one at a time.
    config = PipelineConfig(
        max_batch=4, queue_capacity=FRAMES, overflow=OverflowPolicy.BLOCK, inference_lanes=lanes
    )
    pipeline = Pipeline(ModelStore.serving(engine), config, Metrics())
    loop = asyncio.get_running_loop()
    freed: list[float] = []  # when the event loop was free again after each block

    def keep_the_loop_busy() -> None:
        time.sleep(BLOCKED_S)
        freed.append(time.monotonic())

    def before_run(nth: int) -> None:  # in the inference thread
        if nth in (6, 12):
            # A long run: time enough for the loop to stage the next batch; then the loop
            # is kept busy, queued before the run's own result, so that it hears of the
            # end only afterwards.
            time.sleep(STAGE_TIME_S)
            loop.call_soon_threadsafe(keep_the_loop_busy)

    runs = WatchedRuns(engine, before_run)
    outcomes = await outcomes_of(pipeline, FRAMES)
    assert all(isinstance(o, Prediction) for o in outcomes)
    assert runs.most == 1, "a model that takes turns ran two batches at once"
    assert len(freed) == 2
    # The 7th and 13th runs began while the loop was still busy with the block queued at
    # the end of the run before them: they were staged in the inference thread.
    assert runs.starts[6] < freed[0] - BLOCKED_S / 2
    assert runs.starts[12] < freed[1] - BLOCKED_S / 2


@pytest.mark.timeout(60)
async def test_a_batch_whose_decoding_fails_outright_costs_only_its_own_frames(
    colour_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not a frame's error (those are per frame) but the decoder's own, e.g. no memory for a
    # batch buffer: before, the lane that awaited it ended and its frames never came out.
    engine = InferenceEngine.from_path(colour_model)
    config = PipelineConfig(max_batch=4, queue_capacity=FRAMES, overflow=OverflowPolicy.BLOCK)
    pipeline = Pipeline(ModelStore.serving(engine), config, Metrics())
    decode, calls = pipeline._decoder.decode, [0]

    async def failing_once(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise MemoryError("no room for a batch buffer")
        return await decode(*args)

    monkeypatch.setattr(pipeline._decoder, "decode", failing_once)
    outcomes = await outcomes_of(pipeline, 40)
    failed = [o for o in outcomes if isinstance(o, FrameFailure)]
    assert failed and {f.error.code for f in failed} == {FrameErrorCode.INTERNAL_ERROR}
    assert all("no room for a batch buffer" in f.error.reason for f in failed)
    assert len(failed) <= 4  # one batch
    assert sum(isinstance(o, Prediction) for o in outcomes) == 40 - len(failed)


@pytest.mark.timeout(60)
async def test_short_runs_are_made_on_the_event_loop_and_a_long_one_sends_the_next_to_a_thread(
    colour_model: Path,
) -> None:
    engine = InferenceEngine.from_path(colour_model)
    config = PipelineConfig(max_batch=2, queue_capacity=8, overflow=OverflowPolicy.BLOCK)
    pipeline = Pipeline(ModelStore.serving(engine), config, Metrics())
    long_run = 40

    def before_run(nth: int) -> None:
        if nth == long_run:
            time.sleep(0.05)  # 250 times the limit for a run on the loop

    runs = WatchedRuns(engine, before_run)
    outcomes = await outcomes_of(pipeline, 200)
    assert all(isinstance(o, Prediction) for o in outcomes)
    on_loop = [thread == threading.get_ident() for thread in runs.threads]
    # A run of the colour model takes about 30 us; a busy machine may stretch a few (the
    # first ones too) past the limit, which sends those that follow to a thread for a while.
    assert sum(on_loop[:long_run]) >= long_run / 4
    # Once the long run has ended, the next run goes to a thread (a run staged before the
    # end may still have been made on the loop), ...
    assert not all(on_loop[long_run : long_run + 3])
    # ... and once runs are short again, they come back to the loop.
    assert sum(on_loop[-20:]) >= 10


async def outcomes_of(pipeline: Pipeline, frames: int) -> list[Outcome]:
    """``frames`` red frames through the pipeline, started and stopped here; their outcomes,
    checked to be one per frame, in order."""
    outcomes: list[Outcome] = []
    done = asyncio.Event()

    async def emit(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == frames:
            done.set()

    await pipeline.start(emit)
    try:
        for i in range(frames):
            await pipeline.submit(
                InboundMessage("frames", RED_JPEG, "image/jpeg", message_id=f"f{i:03d}")
            )
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await pipeline.stop(5.0)
    assert [o.meta.frame_id for o in outcomes] == [f"f{i:03d}" for i in range(frames)]
    return outcomes
