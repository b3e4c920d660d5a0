"""The pipeline's last stage: outcomes wait here, a batch at a time, until they are handed on.

Why batches: a batch of 64 frames used to cross this stage as 64 queue puts, 64 emitter
wake-ups and 64 ``task_done`` calls, all on the event loop, which is most of what a small
model's pipeline spends per frame outside decoding. Now the inference stage hands over one
list per batch, and an emitter hands its outcomes on one after another, in frame order.

Bounded: ``put`` never waits (failures come from synchronous callbacks too), so producers
call ``wait_for_room`` first; the stage then holds at most the high-water mark plus what
producers put after their wait (one message's frames, one batch). A slow consumer (a hub
that is down, a blocking outbox) so pushes back on inference and, through it, on intake.
Several emitters take batches at once, so one slow ``emit`` does not hold the rest back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from classifier.predictions import FrameFailure, Prediction

log = logging.getLogger(__name__)

Outcome = Prediction | FrameFailure
Emit = Callable[[Outcome], Awaitable[None]]


class OutcomeStage:
    def __init__(self, high_water: int, emitters: int, on_emit_failure: Callable[[], None]) -> None:
        self.high_water = high_water
        self._emitters = emitters
        self._on_emit_failure = on_emit_failure
        self._batches: deque[Sequence[Outcome]] = deque()
        self._queued = 0  # outcomes in _batches
        self.unfinished = 0  # outcomes queued or in an emitter's hands
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._finished = asyncio.Event()
        self._finished.set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, emit: Emit) -> None:
        self._tasks = [
            asyncio.create_task(self._emitter(emit), name=f"emit-{i}")
            for i in range(self._emitters)
        ]

    def put(self, outcomes: Sequence[Outcome]) -> None:
        """Queues outcomes to be handed on in this order; never waits."""
        if not outcomes:
            return
        self._batches.append(outcomes)
        self._queued += len(outcomes)
        self.unfinished += len(outcomes)
        self._finished.clear()
        self._ready.set()

    async def wait_for_room(self) -> None:
        while self._queued >= self.high_water:
            self._room.clear()
            await self._room.wait()

    async def join(self, timeout_s: float) -> bool:
        """Waits until every outcome queued so far was handed on; False if time ran out."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _emitter(self, emit: Emit) -> None:
        while True:
            while not self._batches:
                self._ready.clear()
                await self._ready.wait()
            batch = self._batches.popleft()
            self._queued -= len(batch)
            if self._queued < self.high_water:
                self._room.set()
            for outcome in batch:
                try:
                    await emit(outcome)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failed send loses that message, never the emitter
                    self._on_emit_failure()
                    log.exception("could not emit the outcome for frame %r", outcome.meta.frame_id)
                finally:
                    self.unfinished -= 1
            if not self.unfinished:
                self._finished.set()
