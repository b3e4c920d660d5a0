"""Decoding in worker processes: the same answers as threads, exactly one outcome per frame
whatever happens to a worker, shared buffers released, and a clean stop with frames in flight.

Real processes (spawned), real shared memory, real ONNX Runtime; workers are killed with
SIGKILL from the test, as an out-of-memory kill or a decoder crash would end them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from classifier.decoding.processes import MAX_RESTARTS, ProcessDecoder
from classifier.engine import InferenceEngine
from classifier.frame_queue import OverflowPolicy
from classifier.metrics import Metrics
from classifier.model_store import ModelStore, ServingModel
from classifier.pipeline import Outcome, Pipeline, PipelineConfig
from classifier.predictions import FrameFailure, Prediction
from edge_module.hub import InboundMessage
from simulator.mqtt.testing import eventually
from tests.integration.model_update_support import RED_JPEG
from tests.support.tiny_models import colour_spec, write_colour_model

pytestmark = pytest.mark.slow

SHM = Path("/dev/shm")


class Collected:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def emit(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def per_frame(self) -> Counter[str]:
        return Counter(o.meta.frame_id for o in self.outcomes)

    def labels(self) -> set[str]:
        return {o.labels[0][0] for o in self.outcomes if isinstance(o, Prediction)}


def pipeline_on(model: Path, processes: int) -> Pipeline:
    settings = PipelineConfig(
        max_batch=8, queue_capacity=512, overflow=OverflowPolicy.BLOCK, decode_processes=processes
    )
    return Pipeline(ModelStore.serving(InferenceEngine.from_path(model)), settings, Metrics())


async def send(pipeline: Pipeline, count: int, prefix: str = "f") -> None:
    for i in range(count):
        message = InboundMessage("frames", RED_JPEG, "image/jpeg", message_id=f"{prefix}{i:04d}")
        await pipeline.submit(message)


def decoder_of(pipeline: Pipeline) -> ProcessDecoder:
    decoder = pipeline._decoder
    assert isinstance(decoder, ProcessDecoder)
    return decoder


def shm_names(decoder: ProcessDecoder) -> list[str]:
    return [name for pool in decoder.pools for name in pool.names]


async def test_processes_give_the_same_predictions_as_threads(colour_model: Path) -> None:
    results = []
    for processes in (0, 2):
        pipeline = pipeline_on(colour_model, processes)
        collected = Collected()
        await pipeline.start(collected.emit)
        await send(pipeline, 40)
        await pipeline.stop(30)
        results.append(collected)
    threads, processes_ = results
    assert set(threads.per_frame().values()) == set(processes_.per_frame().values()) == {1}
    assert threads.labels() == processes_.labels() == {"red"}
    by_frame = {o.meta.frame_id: o for o in threads.outcomes}
    for outcome in processes_.outcomes:
        assert isinstance(outcome, Prediction)
        other = by_frame[outcome.meta.frame_id]
        assert isinstance(other, Prediction)
        assert [label for label, _ in outcome.labels] == [label for label, _ in other.labels]
        scores = [score for _, score in outcome.labels]
        assert scores == pytest.approx([score for _, score in other.labels], abs=1e-6)


async def test_shared_buffers_are_released_when_the_pipeline_stops(colour_model: Path) -> None:
    pipeline = pipeline_on(colour_model, 2)
    collected = Collected()
    await pipeline.start(collected.emit)
    await send(pipeline, 24)
    await asyncio.sleep(0.5)
    names = shm_names(decoder_of(pipeline))
    assert names and all((SHM / name).exists() for name in names)
    await pipeline.stop(30)
    assert not any((SHM / name).exists() for name in names)
    assert set(collected.per_frame().values()) == {1}


async def test_a_new_input_shape_gets_new_buffers_and_the_old_ones_go(tmp_path: Path) -> None:
    small = write_colour_model(tmp_path / "small.onnx", colour_spec(size=16))
    pipeline = pipeline_on(small, 2)
    collected = Collected()
    await pipeline.start(collected.emit)
    await send(pipeline, 8)
    await asyncio.wait_for(_until(lambda: len(collected.outcomes) == 8), 30)
    old = shm_names(decoder_of(pipeline))
    bigger = write_colour_model(tmp_path / "big.onnx", colour_spec(size=48))
    pipeline.store.swap(ServingModel.from_engine(InferenceEngine.from_path(bigger)))
    # Eight at once make one batch, decoded in the processes (a frame or two alone would be
    # decoded in the module's threads, IN_PROCESS_BATCH).
    await send(pipeline, 8, prefix="after-swap-")
    await asyncio.wait_for(_until(lambda: len(collected.outcomes) == 16), 30)
    # the old buffers went as soon as no batch used them, not at shutdown
    assert old and not any((SHM / name).exists() for name in old)
    assert [p.shape for p in decoder_of(pipeline).pools] == [(3, 48, 48)]
    await pipeline.stop(30)
    assert set(collected.per_frame().values()) == {1}


async def test_a_killed_worker_costs_no_frame(colour_model: Path) -> None:
    pipeline = pipeline_on(colour_model, 2)
    collected = Collected()
    await pipeline.start(collected.emit)
    decoder = decoder_of(pipeline)
    sender = asyncio.create_task(send(pipeline, 1500))
    await asyncio.wait_for(_until(lambda: len(collected.outcomes) >= 100), 30)
    victim = decoder._workers[0].process.pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    await asyncio.wait_for(_until(_replaced(decoder, victim)), 30)
    await sender
    await pipeline.stop(60)
    per_frame = collected.per_frame()
    assert len(per_frame) == 1500
    assert set(per_frame.values()) == {1}
    assert decoder.restarts >= 1
    assert all(isinstance(o, Prediction) for o in collected.outcomes)


async def test_workers_that_keep_dying_hand_decoding_to_threads(colour_model: Path) -> None:
    pipeline = pipeline_on(colour_model, 1)
    collected = Collected()
    await pipeline.start(collected.emit)
    decoder = decoder_of(pipeline)
    for _ in range(MAX_RESTARTS):
        pid = decoder._workers[0].process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(_until(_replaced(decoder, pid)), 30)
    assert decoder.degraded
    await send(pipeline, 20)
    await pipeline.stop(30)
    assert set(collected.per_frame().values()) == {1}
    assert collected.labels() == {"red"}


async def test_stopping_with_frames_in_flight_gives_each_one_outcome(colour_model: Path) -> None:
    pipeline = pipeline_on(colour_model, 2)
    collected = Collected()
    await pipeline.start(collected.emit)
    decoder = decoder_of(pipeline)
    pids = [w.process.pid for w in decoder._workers]
    await send(pipeline, 200)
    # The stop must find frames in the workers' hands, or it proves nothing about them.
    await eventually(lambda: any(w.pending for w in decoder._workers), 10, "frames in a worker")
    await pipeline.stop(0.05)  # most are still queued or being decoded
    per_frame = collected.per_frame()
    assert len(per_frame) == 200
    assert set(per_frame.values()) == {1}
    stopped = [o for o in collected.outcomes if isinstance(o, FrameFailure)]
    assert stopped, "every frame was scored before the stop: nothing was in flight"
    assert all(o.error.code == "not_scored_shutdown" for o in stopped)
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _replaced(decoder: ProcessDecoder, pid: int) -> Callable[[], bool]:
    return lambda: decoder.degraded or decoder._workers[0].process.pid != pid


async def _until(condition: Callable[[], object]) -> None:
    """Polls: what it waits for happens in another process, which sets no event here."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def test_a_full_shared_memory_tmpfs_sends_batches_to_threads_instead_of_killing_the_module(
    colour_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container's /dev/shm is 64 MiB unless told otherwise; a write past a full tmpfs is a
    # SIGBUS. Here the tmpfs reports almost no room: no buffer is made, every frame is scored.
    real = shutil.disk_usage

    def nearly_full(path: str) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.total - 1024, 1024)

    monkeypatch.setattr("classifier.decoding.shared_slots.shutil.disk_usage", nearly_full)
    pipeline = pipeline_on(colour_model, 2)
    collected = Collected()
    await pipeline.start(collected.emit)
    await send(pipeline, 40)
    await pipeline.stop(30)
    assert set(collected.per_frame().values()) == {1} and len(collected.per_frame()) == 40
    assert collected.labels() == {"red"}
    decoder = decoder_of(pipeline)
    assert decoder.shared_memory_full >= 1
    assert decoder.pools == []
