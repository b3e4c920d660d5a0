"""The capture stage: after a prediction is handed on, frames worth labelling go to storage.

Why it sits after the outcome, with a queue of its own: scoring never waits for storage.
``offer`` runs on the event loop, decides in microseconds (policies, rate limits, the day's
budget) and only appends to a bounded queue; one writer task builds the record and writes it
in a worker thread. When storage is slow or down, the queue fills and its oldest capture is
dropped for the newest (DROP_OLDEST: a fresh frame of a drifting camera is worth more than an
old one), each drop counted under its policy; the writer retries the capture it holds with a
doubling backoff, so the stage carries on by itself when storage comes back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from classifier.frames import FrameRequest
from classifier.metrics import Metrics
from classifier.predictions import Prediction
from classifier.quality.blob_store import BlobCaptureStore, CaptureStorageError
from classifier.quality.capture_settings import (
    CAPTURE_OFF,
    POLICY_NAMES,
    CaptureSettings,
    CaptureStorage,
)
from classifier.quality.policies import Candidate, CaptureSelector, DailyBudget
from classifier.quality.records import CaptureRecord, build_record

log = logging.getLogger(__name__)

# Reserved per capture for its sidecar, on top of the frame's bytes (sidecars run ~1 KB).
SIDECAR_ALLOWANCE_BYTES = 2_048
_FIRST_RETRY_S = 0.5


@dataclass
class _Pending:
    prediction: Prediction
    request: FrameRequest
    policy: str
    reserved_bytes: int
    record: CaptureRecord | None = None  # built once, kept across retries


class CaptureStage:
    """``__init__`` only assigns; ``start`` runs the writer, ``stop`` ends it."""

    def __init__(
        self,
        storage: CaptureStorage,
        metrics: Metrics,
        store: BlobCaptureStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        configured = storage.connection_string is not None
        self._store = store or (BlobCaptureStore(storage) if configured else None)
        self._rng = rng
        self.settings = CAPTURE_OFF
        self._selector = CaptureSelector(CAPTURE_OFF, rng)
        self._budget = DailyBudget(CAPTURE_OFF.max_bytes_per_day)
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._counts: dict[str, Counter[str]] = {name: Counter() for name in POLICY_NAMES}
        self._storage_state = "idle" if configured else "not_configured"
        self._storage_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- settings and intake (event loop) ------------------------------------------------

    def apply(self, settings: CaptureSettings) -> dict[str, Any]:
        """New policies from the twin; today's bytes stay counted against the new budget."""
        if settings != self.settings:
            self.settings = settings
            self._selector = CaptureSelector(settings, self._rng)
            self._budget.max_bytes = settings.max_bytes_per_day
            log.info("capture settings: %s", settings.to_dict() if settings.active else "off")
        return {"capture": self.report()}

    def offer(self, prediction: Prediction) -> None:
        """Queues the frame if a policy wants it; never waits and never raises."""
        request = prediction.request
        if not self.settings.active or self._store is None or request is None:
            return
        policy, limited = self._selector.choose(Candidate(prediction.labels))
        for name in limited:
            self._counts[name]["rate_limited"] += 1
        if policy is None:
            return
        counts = self._counts[policy]
        counts["selected"] += 1
        reserved = len(request.payload) + SIDECAR_ALLOWANCE_BYTES
        if not self._budget.reserve(reserved):
            self._dropped(policy, "budget")
            return
        if len(self._queue) >= self.storage.queue_capacity:
            oldest = self._queue.popleft()
            self._budget.release(oldest.reserved_bytes)
            self._dropped(oldest.policy, "queue_full")
        self._queue.append(_Pending(prediction, request, policy, reserved))
        self._idle.clear()
        self._wake.set()

    def _dropped(self, policy: str, reason: str) -> None:
        self._counts[policy][f"dropped_{reason}"] += 1
        self.metrics.count(f"captures_dropped.{policy}")

    # -- the writer ---------------------------------------------------------------------

    def start(self) -> None:
        if self._store is not None:
            self._task = asyncio.create_task(self._write_loop(), name="capture-writer")

    async def stop(self, grace_s: float) -> None:
        """Writes what is queued within ``grace_s`` (storage permitting), then stops."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            log.warning("capture: %d captures not written before shutdown", len(self._queue))
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _write_loop(self) -> None:
        assert self._store is not None
        while True:
            while not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            # Taken off the queue while written: an eviction can never hit a capture in flight.
            pending = self._queue.popleft()
            await self._write(self._store, pending)

    async def _write(self, store: BlobCaptureStore, pending: _Pending) -> None:
        delay_s = _FIRST_RETRY_S
        while True:
            try:
                if pending.record is None:
                    pending.record = await asyncio.to_thread(
                        build_record,
                        pending.prediction,
                        pending.request,
                        pending.policy,
                        self.storage.device_id,
                        self.storage.module_id,
                    )
                await asyncio.to_thread(store.write, pending.record)
            except CaptureStorageError as e:
                self._storage_state, self._storage_error = "unavailable", str(e)
                if not e.transient:
                    log.error("capture refused by storage, dropped: %s", e)
                    self._budget.release(pending.reserved_bytes)
                    self._dropped(pending.policy, "refused")
                    return
                log.warning("capture storage unavailable (%s): retrying in %.1f s", e, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self.storage.retry_max_s)
                continue
            except Exception as e:  # a surprise costs this capture, never the stage
                log.exception("capture failed for frame %r", pending.prediction.meta.frame_id)
                self._storage_error = repr(e)
                self._budget.release(pending.reserved_bytes)
                self._dropped(pending.policy, "failed")
                return
            self._storage_state, self._storage_error = "ok", None
            self._counts[pending.policy]["captured"] += 1
            self.metrics.count(f"captures.{pending.policy}")
            return

    # -- reporting ------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue)

    def report(self) -> dict[str, Any]:
        """The reported ``capture`` section: settings in force, storage, counts per policy."""
        policies: dict[str, Any] = {}
        for name in POLICY_NAMES:
            counts = self._counts[name]
            dropped = {k.removeprefix("dropped_"): v for k, v in counts.items() if "dropped_" in k}
            policies[name] = {
                "selected": counts["selected"],
                "captured": counts["captured"],
                "dropped": sum(dropped.values()),
                "dropped_by_reason": dropped,
                "rate_limited": counts["rate_limited"],
            }
        return {
            "settings": self.settings.to_dict() if self.settings.active else None,
            "storage": {
                "state": self._storage_state,
                "error": self._storage_error,
                "container": self.storage.container,
            },
            "queued": len(self._queue),
            "queue_capacity": self.storage.queue_capacity,
            "bytes_today": self._budget.used_bytes,
            "policies": policies,
        }
