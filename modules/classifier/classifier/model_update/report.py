"""What the module tells the twin about model updates: one section, always sent whole.

    "modelUpdate": {
      "state": "idle | downloading | verifying | loading | active | failed | rolled_back",
      "desiredVersion": 7,                          # the twin $version being worked on
      "target": {"name", "version", "sha256"},     # the model asked for (builtin: null)
      "progress": {"receivedBytes": n, "totalBytes": m, "percent": p} | null,
      "error": {"code": "...", "reason": "..."} | null,
      "probation": true | false,                    # active, previous model still loaded
      "updatedAt": "..."
    }

Sending the section whole (nulls included, which delete stale keys in the twin) means a
reader never sees the progress of one update next to the error of another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from classifier.predictions import utc_now

log = logging.getLogger(__name__)


class UpdateState(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    LOADING = "loading"
    ACTIVE = "active"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class UpdateStatus:
    state: UpdateState = UpdateState.IDLE
    desired_version: int | None = None
    target: dict[str, Any] | None = None
    received_bytes: int | None = None
    total_bytes: int | None = None
    error: dict[str, str] | None = None
    probation: bool = False
    updated_at: str = field(default_factory=utc_now)

    def moved(self, **changes: Any) -> UpdateStatus:
        """The next status: progress and error are cleared unless given."""
        base = {"received_bytes": None, "total_bytes": None, "error": None, "probation": False}
        return replace(self, **(base | changes | {"updated_at": utc_now()}))

    def to_dict(self) -> dict[str, Any]:
        progress = None
        if self.received_bytes is not None:
            percent = (
                round(100.0 * self.received_bytes / self.total_bytes, 1)
                if self.total_bytes
                else None
            )
            progress = {
                "receivedBytes": self.received_bytes,
                "totalBytes": self.total_bytes,
                "percent": percent,
            }
        return {
            "state": self.state.value,
            "desiredVersion": self.desired_version,
            "target": self.target,
            "progress": progress,
            "error": self.error,
            "probation": self.probation,
            "updatedAt": self.updated_at,
        }


class ProgressThrottle:
    """Lets a progress report through at most every ``interval_s`` or ``step_percent``."""

    def __init__(self, interval_s: float = 1.0, step_percent: float = 10.0) -> None:
        self.interval_s = interval_s
        self.step_percent = step_percent
        self._last_s = 0.0
        self._last_percent = -100.0

    def due(self, received: int, total: int | None) -> bool:
        now = time.monotonic()
        percent = 100.0 * received / total if total else 0.0
        if (
            now - self._last_s >= self.interval_s
            or percent - self._last_percent >= self.step_percent
        ):
            self._last_s, self._last_percent = now, percent
            return True
        return False


Send = Callable[[dict[str, Any]], Awaitable[None]]


class ReportSender:
    """Sends reported-property patches one at a time, in order, coalescing what piles up.

    Progress is posted from callbacks that cannot wait; sent concurrently, an older patch
    could land after a newer one and the twin would show a stale state. Here one task sends,
    and patches posted while it is busy merge by top-level key (each section is sent whole),
    so only the newest state of each section is waiting: bounded, and never out of order.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, Any] = {}
        self._posted = 0
        self._done = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def post(self, patch: dict[str, Any]) -> int:
        self._pending.update(patch)
        self._posted += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="twin-reporter")
        return self._posted

    async def report(self, patch: dict[str, Any]) -> None:
        """Posts and waits until this patch (or a newer one holding it) was sent or failed."""
        ticket = self.post(patch)
        async with self._changed:
            await self._changed.wait_for(lambda: self._done >= ticket)

    async def _run(self) -> None:
        while self._pending:
            patch, self._pending = self._pending, {}
            ticket = self._posted
            try:
                await self._send(patch)
            except Exception as e:  # the hub may be down: the next patch carries the state
                log.warning("could not report %s: %s", ", ".join(sorted(patch)), e)
            async with self._changed:
                self._done = ticket
                self._changed.notify_all()

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
