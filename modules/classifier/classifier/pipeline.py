"""The scoring pipeline: intake -> frame queue -> decode+preprocess -> batch -> infer -> emit.

Stages and why they sit where they do:
- intake runs on the event loop and does only cheap checks, so a flood of messages never
  waits behind decoding; the bounded frame queue applies the overflow policy right there.
- the assembler takes a micro-batch, reads the serving model from the ``ModelStore`` once for
  the whole batch (so a hot swap lands between batches, never inside one) and decodes the
  batch for that model in a thread pool, one call per chunk rather than per frame to keep
  hand-off overhead low; the decoders release the GIL, so decode overlaps inference of the
  previous batch. A batch waits to fill (up to ``max_batch`` frames or ``max_wait_ms``) only
  while inference is busy with the batch before it: then waiting costs nothing, and at low
  rates a frame is decoded and scored the moment it arrives.
- the inference stage (``inference_stage``) runs each batch on the model it was decoded for,
  in lanes where the model allows, and hands the batch's outcomes on in order.
- emitters hand outcomes on a batch at a time (``outcome_stage``).
Every failure is per frame: it becomes a ``FrameFailure`` outcome and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from classifier.decode_limits import FrameLimits
from classifier.decoding import Decoder
from classifier.decoding.batch import DecodedBatch
from classifier.decoding.choice import decoder_processes
from classifier.decoding.prepared import PreparedFrame
from classifier.decoding.processes import ProcessDecoder
from classifier.decoding.threads import ThreadDecoder
from classifier.errors import FrameError, FrameErrorCode
from classifier.frame_queue import FrameQueue, OverflowPolicy
from classifier.frames import FrameMeta, FrameRequest
from classifier.inference_stage import STAGED, DecodedForModel, InferenceStage
from classifier.intake import DEFAULT_MAX_ENTRIES, frame_requests, message_meta
from classifier.metrics import Metrics
from classifier.model_store import ModelStore, ServingModel
from classifier.outcome_stage import Emit, Outcome, OutcomeStage
from classifier.predictions import FrameFailure, ModelInfo
from edge_module.hub import InboundMessage

log = logging.getLogger(__name__)

__all__ = ["DECODE_AHEAD", "Emit", "Outcome", "Pipeline", "PipelineConfig"]

# Batches decoding at once ahead of the ones being inferred.
DECODE_AHEAD = 2


@dataclass(frozen=True)
class PipelineConfig:
    max_batch: int = 8
    max_wait_ms: float = 5.0
    queue_capacity: int = 64
    overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST
    top_k: int = 3
    confidence_threshold: float = 0.0
    decode_workers: int = 2  # threads, when decode_processes is 0
    # Worker processes writing into shared batch buffers (0: threads; None: by the rule of
    # decoding/choice.py for the model the pipeline starts with).
    decode_processes: int | None = 0
    decode_nice: int = 0  # decoders yield the cores to inference (decoding/choice.py)
    emit_concurrency: int = 8
    # Lane stages: batches inferred at once for a model loaded into lanes (engine.lanes > 1,
    # each run on one thread); a model in one lane has its batches take turns.
    inference_lanes: int = 1
    passthrough_properties: tuple[str, ...] = ()
    max_request_entries: int = DEFAULT_MAX_ENTRIES
    limits: FrameLimits = field(default_factory=FrameLimits)


class Pipeline:
    def __init__(self, store: ModelStore, config: PipelineConfig, metrics: Metrics) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self._queue: FrameQueue[FrameRequest] = FrameQueue(
            config.queue_capacity, config.overflow, self._dropped
        )
        # Failures are put without waiting (they may come from sync callbacks); predictions,
        # and each new message at intake, wait for room below the high-water mark.
        self._outcomes = OutcomeStage(
            max(32, 4 * config.max_batch),
            config.emit_concurrency,
            partial(metrics.count, "emit_failures"),  # no cycle back to the pipeline
        )
        lanes = max(1, config.inference_lanes)
        processes = decoder_processes(config.decode_processes, store.current.engine.input_pixels)
        self.config = config = replace(config, decode_processes=processes)
        # Buffers: the batches decoding ahead, the one being assembled, those inferred or
        # staged, and one to decode a batch again after a fallback to the previous model.
        buffers = DECODE_AHEAD + 2 + lanes + STAGED
        self._decoder: Decoder = (
            ProcessDecoder(processes, config.limits, config.max_batch, buffers, config.decode_nice)
            if processes > 0
            else ThreadDecoder(
                config.decode_workers,
                config.limits,
                config.decode_nice,
                config.max_batch,
                buffers,
            )
        )
        self._tasks: list[asyncio.Task[None]] = []
        # Requests taken off the queue and not yet turned into outcomes, by identity: what
        # is still here when the stages are cancelled is reported, never silently lost.
        self._in_flight: dict[int, FrameRequest] = {}
        # Batches being decoded wait in its queue, in order: up to DECODE_AHEAD decode at
        # once while one is inferred, so the decoders never wait for a batch to be assembled.
        self._inference = InferenceStage(
            store,
            self._decoder,
            metrics,
            self._outcomes,
            self._in_flight,
            lambda: self.config,
            lanes,
            DECODE_AHEAD,
        )
        self._idle = asyncio.Event()  # set whenever nothing is queued or in flight
        self._idle.set()
        self._accepting = False

    async def start(self, emit: Emit) -> None:
        """Starts the stages; every outcome (prediction or failure) is handed to ``emit``."""
        await self._decoder.start()
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._assemble(), name="assemble"),
            *self._inference.start(self._batch_done),
        ]
        self._outcomes.start(emit)

    async def submit(self, message: InboundMessage) -> None:
        """Accepts one message from the frames input. Never raises for bad input: whatever
        goes wrong with one message becomes its error outcome, and the stream goes on."""
        self.metrics.count("messages_received")
        try:
            await self._submit(message)
        except Exception as e:  # no input may stop the stream; the code says it was unforeseen
            log.exception("unexpected error taking in a message")
            self.fail_message(message, FrameError(FrameErrorCode.INTERNAL_ERROR, repr(e)))

    def fail_message(self, message: InboundMessage, error: FrameError) -> None:
        """Reports one outcome for a whole message that is not scored."""
        self._fail(message_meta(message, self.config.passthrough_properties), error)

    async def _submit(self, message: InboundMessage) -> None:
        await self._outcomes.wait_for_room()
        if not self._accepting:
            self.fail_message(message, FrameError(FrameErrorCode.SHUTDOWN, "module is stopping"))
            return
        try:
            requests = frame_requests(
                message,
                self.config.limits.max_frame_bytes,
                self.config.passthrough_properties,
                self.config.max_request_entries,
            )
        except FrameError as e:
            self.fail_message(message, e)
            return
        # A fan-out request's entries may evict only frames of their own source.
        evictable = None
        if len(requests) > 1:
            source = requests[0].meta.source_id
            evictable = lambda queued: queued.meta.source_id == source  # noqa: E731
        for request in requests:
            self.metrics.count("frames_received")
            self._idle.clear()
            await self._queue.put(request, evictable)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stops intake, scores what is queued within ``grace_s``, reports the rest, then ends."""
        self._accepting = False
        deadline = time.monotonic() + grace_s
        self._update_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            log.warning(
                "grace period over: %d queued, %d in flight", len(self._queue), len(self._in_flight)
            )
        stages = self._tasks
        for task in stages:
            task.cancel()
        await asyncio.gather(*stages, return_exceptions=True)
        await self._inference.cancel_waiting()
        unscored = list(self._in_flight.values()) + self._queue.drain()
        self._in_flight.clear()
        for request in unscored:
            self._fail(
                request.meta, FrameError(FrameErrorCode.SHUTDOWN, "module stopped before scoring")
            )
        if not await self._outcomes.join(max(1.0, deadline - time.monotonic())):
            log.warning("%d outcomes not sent before shutdown", self._outcomes.unfinished)
        await self._outcomes.stop()
        # A run that was under way when its lane was cancelled may still read a shared batch
        # buffer: the inference threads end before the decoders free those buffers.
        self._inference.close()
        await self._decoder.close()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def pending(self) -> int:
        """Frames queued or being scored, and outcomes not yet handed on: 0 when quiet."""
        return len(self._queue) + len(self._in_flight) + self._outcomes.unfinished

    @property
    def model_info(self) -> ModelInfo:
        return self.store.current.info

    def apply_settings(self, **changes: Any) -> PipelineConfig:
        """Changes settings that take effect from the next batch (top_k, threshold, batching).

        The config is replaced whole, so every stage sees either the old or the new one.
        """
        self.config = replace(self.config, **changes)
        return self.config

    # -- stages -------------------------------------------------------------------------

    async def _assemble(self) -> None:
        while True:
            requests = await self._queue.get_batch(
                self.config.max_batch, self.config.max_wait_ms / 1000, self._inference.busy
            )
            self._in_flight.update((id(r), r) for r in requests)
            model = self.store.current
            decoding = asyncio.create_task(self._decode_batch(model, requests))
            try:
                await self._inference.batches.put(decoding)
            except asyncio.CancelledError:
                decoding.cancel()
                raise

    async def _decode_batch(
        self, model: ServingModel, requests: list[FrameRequest]
    ) -> DecodedForModel:
        try:
            decoded = await self._decoder.decode(model, requests, time.monotonic())
        except Exception as e:  # the decoder's own failure, not a frame's: this batch's only
            log.exception("decoding a batch of %d failed", len(requests))
            error = FrameError(FrameErrorCode.INTERNAL_ERROR, f"decoding failed: {e!r}")
            decoded = DecodedBatch([PreparedFrame(r, None, r.rejected or error) for r in requests])
        return DecodedForModel(model, decoded)

    def _batch_done(self) -> None:
        self._queue.wake()  # a batch still filling need not wait any longer
        self._update_idle()

    def _update_idle(self) -> None:
        if not len(self._queue) and not self._in_flight:
            self._idle.set()

    # -- failures -----------------------------------------------------------------------

    def _dropped(self, request: FrameRequest) -> None:
        self.metrics.count("frames_dropped")
        self._fail(
            request.meta,
            FrameError(FrameErrorCode.OVERLOADED, f"frame queue full ({self.config.overflow})"),
        )

    def _fail(self, meta: FrameMeta, error: FrameError) -> None:
        self.metrics.count(f"frames_failed.{error.code}")
        self._outcomes.put([FrameFailure(meta, error)])
