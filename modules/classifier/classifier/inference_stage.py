"""The pipeline's inference stage: decoded batches in, every frame's outcome out, in order.

- Each lane task takes the next decoded batch, runs it on the model it was decoded for in a
  worker thread (ONNX Runtime releases the GIL in ``run``), ranks the scores and hands the
  batch's outcomes to the outcome stage at once.
- ``lanes`` batches run at once, each single-threaded, for a model loaded into lanes (a
  small CPU model on a few cores, ``inference_lanes.py``); other models take turns.
  Outcomes leave in the order the batches were taken either way.
- ``STAGED`` batch beyond those that can run waits in the inference threads' own queue, its
  tensor ready: when a run ends, that thread starts the next at once, where before the
  event loop had first to hear of the end, hand the outcomes on and submit the next batch
  while the cores idled (MobileNetV2 on 2 cores: 2-4.5% more frames/s in three interleaved
  runs, docs/benchmarks.md section 10b). Batches go to the threads in the order they were
  taken, so a batch decoded early never runs ahead while those behind it wait to hand on.
- A model whose runs take less than ``INLINE_RUN_MS`` (of late, ``RecentRuns``) runs on the
  event loop: a thread would cost more than the run (its wake-up, the GIL passed to it and
  back, the loop woken to hear the end); the near-null model's module process spent 2.5 us
  a frame less (docs/benchmarks.md section 10c). The loop is held no longer than a thread
  hop would have taken; a run that turns out long sends the next ones to the threads again.
- When a model on probation after a swap fails, the store hands back the previous model and
  the batch is decoded and scored again on it: the frames still get predictions.
Every failure is per frame: it becomes a ``FrameFailure`` outcome and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from classifier.decoding import Decoder
from classifier.decoding.batch import DecodedBatch
from classifier.decoding.prepared import PreparedFrame
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameRequest
from classifier.metrics import Metrics
from classifier.model_store import ModelStore, ServingModel
from classifier.outcome_stage import Outcome, OutcomeStage
from classifier.predictions import FrameFailure, Prediction, top_labels_batch
from classifier.preprocess import FloatArray

log = logging.getLogger(__name__)

# Batches submitted to the inference threads beyond those that can run at once.
STAGED = 1
# Runs shorter than this, of late, are made on the event loop (see the module doc).
INLINE_RUN_MS = 0.2
# The weight of a run in the recent average of its engine's runs.
_RECENT_WEIGHT = 0.25


class RankingSettings(Protocol):
    """What the stage reads of the pipeline's settings, afresh for every batch."""

    @property
    def top_k(self) -> int: ...

    @property
    def confidence_threshold(self) -> float: ...


@dataclass(eq=False)
class _Turn:
    """A batch's place in line, in the order batches are taken: when it went to the inference
    threads (or needed no run), and when its outcomes were handed on."""

    submitted: asyncio.Future[None]
    handed_on: asyncio.Future[None]

    @classmethod
    def new(cls) -> _Turn:
        loop = asyncio.get_running_loop()
        return cls(loop.create_future(), loop.create_future())

    def settle(self) -> None:
        for future in (self.submitted, self.handed_on):
            _done(future)


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class RecentRuns:
    """How long the serving engine's runs took of late: an average that follows the last
    few, started afresh for each new engine (a model swap)."""

    engine: object = None
    typical_ms: float = math.inf

    def short(self, engine: object) -> bool:
        return engine is self.engine and self.typical_ms < INLINE_RUN_MS

    def ran(self, engine: object, ms: float) -> None:
        if engine is not self.engine:
            self.engine, self.typical_ms = engine, ms
        else:
            self.typical_ms += (ms - self.typical_ms) * _RECENT_WEIGHT


@dataclass
class DecodedForModel:
    model: ServingModel  # the model every frame of the batch was decoded for
    decoded: DecodedBatch


class InferenceStage:
    def __init__(
        self,
        store: ModelStore,
        decoder: Decoder,
        metrics: Metrics,
        outcomes: OutcomeStage,
        in_flight: dict[int, FrameRequest],
        settings: Callable[[], RankingSettings],
        lanes: int,
        queue_size: int,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.lanes = max(1, lanes)
        self._decoder = decoder
        self._outcomes = outcomes
        # Requests taken off the frame queue and not yet turned into outcomes (the pipeline's).
        self._in_flight = in_flight
        self._settings = settings
        # Batches being decoded, in order, as the assembler made them.
        self.batches: asyncio.Queue[asyncio.Task[DecodedForModel]] = asyncio.Queue(queue_size)
        self._lane_threads = ThreadPoolExecutor(self.lanes, "infer")
        # A model not loaded into lanes (on a GPU, or large) runs one batch at a time: on one
        # thread, whose queue holds the staged batch.
        self._one_thread = (
            self._lane_threads if self.lanes == 1 else ThreadPoolExecutor(1, "infer-turns")
        )
        # The batch taken last: the next goes to the inference threads after it (so a batch
        # whose decoding ended early does not run first while the tasks of the batches behind
        # it wait for its outcomes to leave) and hands its outcomes on after it.
        self._last_turn: _Turn | None = None
        self.inferring = 0  # batches in the stage or waiting for it
        self.recent_runs = RecentRuns()

    def start(self, on_batch_done: Callable[[], None]) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._lane(on_batch_done), name=f"infer-{i}")
            for i in range(self.lanes + STAGED)
        ]

    def busy(self) -> bool:
        """Every lane the serving model may use has a batch, or one is waiting for a lane."""
        lanes = self.lanes if self.store.current.engine.lanes > 1 else 1
        return self.inferring >= lanes or not self.batches.empty()

    async def cancel_waiting(self) -> None:
        """Stops the batches still decoding (the stage's tasks are cancelled already)."""
        pending = []
        while not self.batches.empty():
            pending.append(self.batches.get_nowait())
        for decoding in pending:
            decoding.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, DecodedForModel):  # decoded before it was cancelled
                result.decoded.release()

    def close(self) -> None:
        for threads in {self._lane_threads, self._one_thread}:
            threads.shutdown(wait=True, cancel_futures=True)

    async def _lane(self, on_batch_done: Callable[[], None]) -> None:
        """One lane (or the staged batch): takes the next decoded batch, scores it, hands it
        on."""
        while True:
            await self._outcomes.wait_for_room()
            decoding = await self.batches.get()
            before, mine = self._last_turn, _Turn.new()
            self._last_turn = mine
            self.inferring += 1
            try:
                await self._infer_batch(decoding, before, mine)
            finally:
                self.inferring -= 1
                mine.settle()
            on_batch_done()

    async def _infer_batch(
        self, decoding: asyncio.Task[DecodedForModel], before: _Turn | None, mine: _Turn
    ) -> None:
        try:
            batch = await decoding
        except asyncio.CancelledError:
            decoding.cancel()
            raise
        items = batch.decoded.items
        out: dict[int, Outcome] = {}  # by id(request): a frame's one outcome
        try:
            for p in items:
                if p.error is not None:
                    out[id(p.request)] = FrameFailure(p.request.meta, p.error)
            await self._score(batch.model, batch.decoded, out, before, mine)
        except Exception as e:  # one batch's surprise must not end the stage
            log.exception("unexpected error scoring a batch of %d", len(items))
            error = FrameError(FrameErrorCode.INTERNAL_ERROR, repr(e))
            for p in items:
                out.setdefault(id(p.request), FrameFailure(p.request.meta, error))
        finally:
            _done(mine.submitted)  # also where the batch needed no run
            batch.decoded.release()
        if before is not None:  # outcomes leave in the order the batches were taken
            await before.handed_on
        self._hand_on(items, out)

    def _hand_on(self, items: list[PreparedFrame], out: dict[int, Outcome]) -> None:
        """The batch's outcomes to the outcome stage, in frame order, and the frames are no
        longer in flight. What is not in flight any more was reported at shutdown."""
        outcomes: list[Outcome] = []
        for p in items:
            if self._in_flight.pop(id(p.request), None) is None:
                continue
            outcome = out.get(id(p.request))
            if outcome is None:  # every path above settles every frame; say so if not
                error = FrameError(FrameErrorCode.INTERNAL_ERROR, "frame left without an outcome")
                outcome = FrameFailure(p.request.meta, error)
            if isinstance(outcome, FrameFailure):
                self.metrics.count(f"frames_failed.{outcome.error.code}")
            outcomes.append(outcome)
        self._outcomes.put(outcomes)

    async def _score(
        self,
        model: ServingModel,
        decoded: DecodedBatch,
        out: dict[int, Outcome],
        before: _Turn | None,
        mine: _Turn,
    ) -> None:
        good = decoded.good
        if not good:
            return
        loop = asyncio.get_running_loop()
        tensor = decoded.model_input(good)
        threads = self._lane_threads if model.engine.lanes > 1 else self._one_thread
        if before is not None:
            await before.submitted
        try:
            if self.recent_runs.short(model.engine):
                _done(mine.submitted)
                scores, infer_ms = _timed_run(model, tensor)
            else:
                running = loop.run_in_executor(threads, _timed_run, model, tensor)
                _done(mine.submitted)
                scores, infer_ms = await running
            self.recent_runs.ran(model.engine, infer_ms)
        except Exception as e:  # ONNX Runtime raises untyped errors
            log.exception("inference failed for a batch of %d on %s", len(good), model.info.name)
            fallback = self.store.inference_failed(model, str(e))
            if fallback is not None:
                # The frames were decoded for the failed model's input; decode them again
                # for the model that serves now, then score them there.
                self.metrics.count("batches_rescored")
                requests = [p.request for p in good]
                decoded.release()  # its buffer is free before the next one is taken
                again = await self._decoder.decode(fallback, requests, time.monotonic())
                try:
                    for p in again.items:
                        if p.error is not None:
                            out[id(p.request)] = FrameFailure(p.request.meta, p.error)
                    await self._score(fallback, again, out, before, mine)
                finally:
                    again.release()
                return
            error = FrameError(FrameErrorCode.INFERENCE_FAILED, str(e))
            for p in good:
                out[id(p.request)] = FrameFailure(p.request.meta, error)
        else:
            self._predicted(model, good, scores, infer_ms, out)
            self.store.served(model, len(good))

    def _predicted(
        self,
        model: ServingModel,
        batch: list[PreparedFrame],
        scores: FloatArray,
        infer_ms: float,
        out: dict[int, Outcome],
    ) -> None:
        settings = self._settings()
        now = time.monotonic()
        try:
            ranked = top_labels_batch(
                scores,
                model.engine.model.spec.labels,
                settings.top_k,
                settings.confidence_threshold,
            )
        except Exception as e:  # e.g. a model whose output does not fit its labels
            log.exception("could not rank the scores of a batch of %d", len(batch))
            error = FrameError(FrameErrorCode.INTERNAL_ERROR, f"ranking failed: {e!r}")
            for p in batch:
                out[id(p.request)] = FrameFailure(p.request.meta, error)
            return
        # Metrics are recorded once per batch, under one lock: per-frame bookkeeping is what
        # limits a small model's throughput.
        shared = {"inference": infer_ms, "batch_size": float(len(batch))}
        info = model.info
        timings = [p.timings_ms | shared for p in batch]
        for p, top, frame_timings in zip(batch, ranked, timings, strict=True):
            request = p.request
            frame_timings["total"] = (now - request.received_s) * 1000
            out[id(request)] = Prediction(
                request.meta, top, info, frame_timings, p.width, p.height, request
            )
        stages = {
            stage: [t[stage] for t in timings if stage in t]
            for stage in ("queue", "decode", "preprocess", "total")
        }
        self.metrics.count("batches")
        self.metrics.count("frames_scored", len(batch))
        self.metrics.observe_many(stages | {"inference_batch": [infer_ms]})
        self.metrics.observe_size("batch_size", len(batch))


def _timed_run(model: ServingModel, tensor: FloatArray) -> tuple[FloatArray, float]:
    """Scores and milliseconds of one run, timed in its thread: a staged batch's wait for the
    thread is not inference time."""
    started = time.perf_counter()
    scores = model.engine.run(tensor)
    return scores, (time.perf_counter() - started) * 1000
