"""Decoding in worker processes that write straight into shared-memory batch buffers.

Why processes: in one Python process, the Python parts of decoding (header checks, the
decoder's bookkeeping) and the event loop's per-frame work all queue for one GIL, so adding
cores stops helping early. Each worker process has its own interpreter; the module's process
keeps only intake, batching, inference and the outcomes.

What crosses a process boundary per batch: one message per chunk of frames through a pipe
(``worker_link.WorkerLink``: never blocking the event loop on a full pipe) naming where the frames
are, and back a small result per frame (size, timings, or the error). The encoded frames are
copied into the slot's shared input arena, and the tensors are written by the workers into
the slot's shared block, read by ONNX Runtime in place (``shared_slots.SlotPool``).

A worker that dies (a decoder crash on a hostile frame, an out-of-memory kill) is replaced;
the frames it held are decoded again one by one, so only a frame that kills a worker again
fails, with ``internal_error``. Every frame still gets exactly one result. Workers that keep
dying (``MAX_RESTARTS`` within ``RESTART_WINDOW_S``) are not replaced again: decoding goes on
in the module's own threads, slower but never stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import time
from collections import deque
from typing import Any

from classifier.decode_limits import FrameLimits
from classifier.decoding.batch import DecodedBatch
from classifier.decoding.prepared import FrameResult, PreparedFrame, to_prepared
from classifier.decoding.shared_slots import SharedMemoryFullError, SlotPool
from classifier.decoding.threads import ThreadDecoder
from classifier.decoding.worker import serve, setup_bytes
from classifier.decoding.worker_link import WorkerDiedError, WorkerLink
from classifier.errors import FrameErrorCode
from classifier.frames import FrameRequest
from classifier.model_store import ServingModel

log = logging.getLogger(__name__)

_CRASHED: FrameResult = (
    0,
    0,
    {},
    (FrameErrorCode.INTERNAL_ERROR.value, "the decoder process died on this frame"),
)
_STOP_TIMEOUT_S = 5.0
MAX_RESTARTS = 5
# Batches this small are decoded in the module's own threads: at 20 frames/s (one frame a
# batch) the pipes and the worker's wake-up added 0.8 ms to every frame's latency.
IN_PROCESS_BATCH = 2
RESTART_WINDOW_S = 60.0


class DecoderUnavailableError(Exception):
    """No worker process can be kept alive: the threads take over."""


Chunk = list[tuple[int, FrameRequest]]
# A batch's shared buffers by name, and where each row's frame is in the input arena.
_Places = tuple[str, str, dict[int, tuple[int, int]]]


class ProcessDecoder:
    def __init__(
        self,
        processes: int,
        limits: FrameLimits,
        capacity: int,
        in_flight: int = 3,
        nice: int = 0,
    ) -> None:
        self.processes = processes
        self.nice = nice
        # Batches that may hold a buffer at once (decoding ahead, inferred, re-decoded after a
        # model fallback); fewer buffers than that would let those stages wait on each other.
        self.in_flight = in_flight
        self.limits = limits
        self.capacity = capacity  # frames per buffer; a larger batch gets a larger pool
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[WorkerLink] = []
        self._pools: list[SlotPool] = []
        self._tasks = itertools.count()
        self._any_alive = asyncio.Event()
        self.restarts = 0
        self._restart_times: deque[float] = deque(maxlen=MAX_RESTARTS)
        self.degraded = False  # the worker processes kept dying: decoding in threads
        self.shared_memory_full = 0  # batches decoded in threads for want of shared memory
        self._fallback = ThreadDecoder(2, limits, nice, capacity, in_flight)
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for _ in range(self.processes):
            self._spawn()

    def _spawn(self) -> WorkerLink:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=serve, args=(theirs, self.nice), name="decoder", daemon=True
        )
        process.start()
        theirs.close()
        worker = WorkerLink.to(process, ours)
        loop = asyncio.get_running_loop()
        loop.add_reader(ours.fileno(), self._readable, worker)
        loop.add_reader(process.sentinel, self._exited, worker)
        self._workers.append(worker)
        self._any_alive.set()
        return worker

    async def close(self) -> None:
        self._closing = True
        for worker in list(self._workers):
            self._forget_worker(worker)
            with contextlib.suppress(WorkerDiedError):
                await worker.send(("stop",))
        for worker in list(self._workers):
            await asyncio.to_thread(worker.process.join, _STOP_TIMEOUT_S)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, _STOP_TIMEOUT_S)
            worker.close()
        self._workers.clear()
        for pool in self._pools:
            pool.close()  # the workers are gone: nothing maps these buffers any more
        self._pools.clear()
        await self._fallback.close()

    # -- decoding -----------------------------------------------------------------------------

    async def decode(
        self, model: ServingModel, requests: list[FrameRequest], picked_s: float
    ) -> DecodedBatch:
        if self.degraded or len(requests) <= IN_PROCESS_BATCH:
            # A frame or two (a quiet camera) is decoded sooner here than two pipe hops away;
            # buffers of a model no longer served go now, not when a large batch comes.
            for pool in list(self._pools):  # a closing pool leaves the list
                if pool.shape != model.preprocessor.input_shape():
                    pool.retire()
            return await self._fallback.decode(model, requests, picked_s)
        try:
            return await self._decode(model, requests, picked_s)
        except DecoderUnavailableError:
            return await self._fallback.decode(model, requests, picked_s)
        except SharedMemoryFullError as e:
            # Writing past a full tmpfs would kill the module (SIGBUS): this batch in threads.
            self.shared_memory_full += 1
            if self.shared_memory_full % 1000 == 1:  # the first time, then every 1000th
                log.warning(
                    "decoding in threads (%d batches so far): %s", self.shared_memory_full, e
                )
            return await self._fallback.decode(model, requests, picked_s)

    async def _decode(
        self, model: ServingModel, requests: list[FrameRequest], picked_s: float
    ) -> DecodedBatch:
        shape = model.preprocessor.input_shape()
        pool = self._pool_for(shape, len(requests))
        slot = await pool.acquire()
        try:
            block = pool.array(slot)
            work = [(row, r) for row, r in enumerate(requests) if r.rejected is None]
            places = self._copy_in(pool, slot, work)
            setup = setup_bytes(model.preprocessor.spec, self.limits)
            layout = (pool.capacity, *shape)
            parts = await asyncio.gather(
                *(self._run(chunk, places, layout, setup) for chunk in self._split(work))
            )
        except BaseException:
            pool.release(slot)
            raise
        results = {
            row: result
            for chunk, part in parts
            for (row, _), result in zip(chunk, part, strict=True)
        }
        items = [
            self._item(request, row, results.get(row), block, picked_s)
            for row, request in enumerate(requests)
        ]
        return DecodedBatch(items, block, lambda: pool.release(slot))

    @staticmethod
    def _item(
        request: FrameRequest,
        row: int,
        result: FrameResult | None,
        block: Any,
        picked_s: float,
    ) -> PreparedFrame:
        queue_ms = (picked_s - request.received_s) * 1000
        if result is None:  # refused at intake: it only travels to be reported in order
            return PreparedFrame(request, None, request.rejected, timings_ms={"queue": queue_ms})
        return to_prepared(request, block[row], result, queue_ms)

    def _split(self, work: Chunk) -> list[Chunk]:
        if not work:
            return []
        parts = max(1, min(len(work), sum(w.alive for w in self._workers) or 1))
        size = -(-len(work) // parts)
        return [work[i : i + size] for i in range(0, len(work), size)]

    def _copy_in(self, pool: SlotPool, slot: int, work: Chunk) -> _Places:
        """Copies the frames into the slot's input arena: (block, arena, {row: (at, size)})."""
        arena, replaced = pool.arena(slot, sum(len(r.payload) for _, r in work))
        if replaced is not None:
            self._tell_workers(("forget", [replaced]))
        where: dict[int, tuple[int, int]] = {}
        at, buffer = 0, arena.buf
        assert buffer is not None  # open: the arena is this batch's until it is released
        for row, request in work:
            size = len(request.payload)
            buffer[at : at + size] = request.payload
            where[row] = (at, size)
            at += size
        return pool.blocks[slot].name, arena.name, where

    async def _run(
        self, chunk: Chunk, places: _Places, layout: tuple[int, ...], setup: bytes
    ) -> tuple[Chunk, list[FrameResult]]:
        worker = await self._least_loaded()
        task = next(self._tasks)
        future: asyncio.Future[list[FrameResult]] = asyncio.get_running_loop().create_future()
        worker.pending[task] = future
        worker.frames += len(chunk)
        block, arena, where = places
        frames = [(row, r.meta.frame_id, *where[row], r.raw) for row, r in chunk]
        message = ("decode", task, block, layout, setup, arena, frames)
        try:
            await worker.send(message, task)
            return chunk, await future
        except WorkerDiedError:
            if len(chunk) == 1:
                log.error("the decoder process died on frame %r", chunk[0][1].meta.frame_id)
                return chunk, [_CRASHED]
            # Some frame of the chunk killed it, or something else did: each frame again, alone.
            singles = await asyncio.gather(
                *(self._run([item], places, layout, setup) for item in chunk)
            )
            return chunk, [result for _, part in singles for result in part]
        finally:
            worker.pending.pop(task, None)
            worker.frames -= len(chunk)

    async def _least_loaded(self) -> WorkerLink:
        while True:
            if self.degraded:
                raise DecoderUnavailableError("the decoder processes keep dying")
            alive = [w for w in self._workers if w.alive]
            if alive:
                return min(alive, key=lambda w: w.frames)
            self._any_alive.clear()
            await self._any_alive.wait()

    def _pool_for(self, shape: tuple[int, ...], frames: int) -> SlotPool:
        for pool in self._pools:
            if pool.fits(shape, frames):
                return pool
        for pool in self._pools:
            pool.retire()
        pool = SlotPool(shape, max(frames, self.capacity), self.in_flight)
        pool.on_close = self._forget_pool
        self._pools = [p for p in self._pools if not p.closed] + [pool]
        return pool

    def _forget_pool(self, pool: SlotPool) -> None:
        if pool in self._pools:
            self._pools.remove(pool)
        self._tell_workers(("forget", pool.names))

    def _tell_workers(self, message: Any) -> None:
        for worker in self._workers:
            if worker.alive:
                worker.tell(message)

    # -- the workers' side of the pipes -------------------------------------------------------

    def _readable(self, worker: WorkerLink) -> None:
        # One answer a call: the loop calls again while the socket holds more (it is watched
        # level-triggered), and ``poll`` would build a selector on every call (3.6% of the
        # module's process, near-null model).
        try:
            _, task, results = worker.connection.recv()
        except (EOFError, OSError):
            self._exited(worker)
            return
        worker.answered(task, results)

    def _exited(self, worker: WorkerLink) -> None:
        if not worker.alive:
            return
        self._forget_worker(worker)
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(WorkerDiedError(f"exit code {worker.process.exitcode}"))
        if worker in self._workers:
            self._workers.remove(worker)
        worker.close()
        if self._closing:
            return
        now = time.monotonic()
        self._restart_times.append(now)
        window = now - self._restart_times[0]
        if len(self._restart_times) == MAX_RESTARTS and window < RESTART_WINDOW_S:
            log.error(
                "decoder processes died %d times in %.0f s: decoding in threads from now on",
                MAX_RESTARTS,
                window,
            )
            self.degraded = True
            self._any_alive.set()  # waiters see degraded and fall back
            return
        log.error(
            "a decoder process ended (exit code %s): starting another", worker.process.exitcode
        )
        self.restarts += 1
        self._spawn()

    def _forget_worker(self, worker: WorkerLink) -> None:
        worker.alive = False
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(worker.connection.fileno())
        loop.remove_reader(worker.process.sentinel)

    @property
    def pools(self) -> list[SlotPool]:
        return list(self._pools)
