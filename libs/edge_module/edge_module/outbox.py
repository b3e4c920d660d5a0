"""The bounded outbox between a module's work and the hub: messages wait here until edgeHub
has them (the classifier's outcomes, the frame source's frames).

Why: with azure-iot-device 2.14, a send while edgeHub is unreachable raises at once and
queues nothing, so every message produced during an edgeHub restart was lost. Here a message
stays queued until a send of it completes; failed sends are retried, oldest first, once the
hub answers again (the SDK reconnects by itself).

- Order: normally up to ``send_window`` sends are in flight at once (each waits for edgeHub's
  PUBACK, and the SDK runs each in a thread of its own, so those may land in any order).
  After a failure, or while the SDK reports no connection, one at a time until the backlog
  is through, so what waited for edgeHub goes out in order. Only sends already in flight when
  the connection dropped may overtake the ones that failed with it.
- At least once: a send the SDK reported failed may still have reached edgeHub (paho resends
  what was in flight when it reconnects), so a message can arrive twice; both copies carry
  the same message id (the classifier's ``outcome_messages`` gives each outcome its own).
- Overflow, by name: ``drop_oldest`` (live video: the oldest queued message is dropped and
  counted) or ``block`` (batch scoring: ``put`` waits for room, which pushes back on the
  pipeline and, through its queue, on intake).
- A message the hub refuses as such (``OutboundRejectedError``) is replaced by its short
  fallback (``Outgoing.fallback``); a send that keeps failing for reasons other than the
  connection gives up after ``max_attempts`` and sends the fallback too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from edge_module.counting import Counting
from edge_module.errors import HubError, OutboundRejectedError
from edge_module.hub import Hub, OutboundMessage
from edge_module.watchdog import HubWatchdog

log = logging.getLogger(__name__)


class OutboxPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"


@dataclass(frozen=True)
class OutboxConfig:
    capacity: int = 2_000
    policy: OutboxPolicy = OutboxPolicy.DROP_OLDEST
    send_window: int = 8
    call_timeout_s: float = 30.0
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    max_attempts: int = 5  # for failures that are not the connection's


@dataclass(frozen=True)
class Outgoing:
    """One message for one output, about one frame (named in logs), with what to send instead
    if the hub refuses it (None: nothing; the fallback itself has none)."""

    output: str
    message: OutboundMessage
    fallback: Outgoing | None
    frame_id: str


@dataclass
class _Entry:
    seq: int
    item: Outgoing
    odd_failures: int = 0


class Outbox:
    def __init__(
        self, hub: Hub, config: OutboxConfig, metrics: Counting, watchdog: HubWatchdog
    ) -> None:
        self._hub = hub
        self.config = config
        self._metrics = metrics
        self._watchdog = watchdog
        self._queue: deque[_Entry] = deque()
        self._inflight: dict[asyncio.Task[None], _Entry] = {}
        self._failed: list[_Entry] = []
        self._seq = 0
        self._recovering = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._runner: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._queue) + len(self._inflight) + len(self._failed)

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="outbox")

    async def put(self, item: Outgoing) -> None:
        if self.config.policy is OutboxPolicy.BLOCK:
            while self.depth >= self.config.capacity:
                self._room.clear()
                await self._room.wait()
        elif self.depth >= self.config.capacity and self._queue:
            victim = self._queue.popleft()
            self._metrics.count("outbox_dropped_full")
            log.warning("outbox full: dropped the message for frame %r", victim.item.frame_id)
        self._seq += 1
        self._queue.append(_Entry(self._seq, item))
        self._empty.clear()
        self._wake.set()

    async def flush(self, timeout_s: float) -> bool:
        """Waits until everything queued was sent (or given up); False if time ran out."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> int:
        """Stops sending; returns how many messages were still unsent (they are lost)."""
        left = self.depth
        tasks = [t for t in (self._runner, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if left:
            log.warning("%d messages were not sent before the module stopped", left)
        return left

    async def _run(self) -> None:
        backoff_s = self.config.retry_initial_s
        while True:
            self._wake.clear()
            if self._failed and not self._inflight:
                # Everything in flight has settled: the failures go back first, in order.
                for entry in sorted(self._failed, key=lambda e: e.seq, reverse=True):
                    self._queue.appendleft(entry)
                self._failed.clear()
                self._recovering = True
                self._metrics.count("outbox_retries")
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self.config.retry_max_s)
            elif self._recovering and not self._failed and not self._inflight:
                backoff_s = self.config.retry_initial_s
            if not self._failed:
                # One at a time unless the line is known good: sends in flight together can
                # finish out of order when the connection changes under them.
                healthy = not self._recovering and self._hub.connected
                window = self.config.send_window if healthy else 1
                while self._queue and len(self._inflight) < window:
                    entry = self._queue.popleft()
                    task = asyncio.create_task(self._send(entry))
                    self._inflight[task] = entry
                    task.add_done_callback(self._settled)
            if not self.depth:
                self._empty.set()
            if self.depth < self.config.capacity:
                self._room.set()
            await self._wake.wait()

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._wake.set()

    async def _send(self, entry: _Entry) -> None:
        item = entry.item
        try:
            await self._watchdog.watch(
                self._hub.send(item.output, item.message), self.config.call_timeout_s
            )
        except asyncio.CancelledError:
            raise
        except OutboundRejectedError as e:
            self._give_up(entry, f"refused by the hub: {e}")
        except (HubError, TimeoutError) as e:
            if isinstance(e, TimeoutError):
                self._metrics.count("outbox_send_timeouts")
            log.info("send of frame %r failed, will retry: %r", item.frame_id, e)
            self._failed.append(entry)
        except Exception as e:  # an SDK surprise: retried a few times, then given up
            entry.odd_failures += 1
            log.exception("unexpected error sending the message for frame %r", item.frame_id)
            if entry.odd_failures >= self.config.max_attempts:
                self._give_up(entry, f"failed {entry.odd_failures} times: {e!r}")
            else:
                self._failed.append(entry)
        else:
            self._metrics.count("outbox_sent")
            if not self._queue:  # the backlog is through: back to sending side by side
                self._recovering = False

    def _give_up(self, entry: _Entry, why: str) -> None:
        fallback = entry.item.fallback
        if fallback is None:
            self._metrics.count("outbox_refused")
            log.error("message for frame %r cannot be sent (%s): lost", entry.item.frame_id, why)
            return
        self._metrics.count("outbox_fallbacks")
        log.warning(
            "message for frame %r %s; sending its fallback instead", entry.item.frame_id, why
        )
        # Everything still queued is newer than a send that was in flight: the head keeps order.
        self._queue.appendleft(_Entry(entry.seq, fallback))
