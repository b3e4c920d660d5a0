"""Notices a wedged hub connection, so the module can exit and edgeAgent can restart it.

Wedged means: the SDK reports a connection, yet the sends and twin calls made over it have
not completed (they time out or hang) for longer than ``window_s``. The SDK recovers from a
connection it knows is gone (it reconnects, and the outbox keeps outcomes meanwhile); it does
not recover from one it believes is fine. edgeAgent's ``on-unhealthy`` restart policy is not
acted on, so exiting non-zero is how a module asks to be restarted.

A quiet module makes no calls, so a wedge would go unnoticed until the next frame: when
nothing was asked of the hub for ``probe_interval_s``, the watchdog asks for the twin.

Before giving up, it tries once per episode to start over on a new connection (``renew``),
as soon as calls have been stuck for a call timeout: exiting loses whatever the module holds
(frames the SDK acknowledged on receipt, outcomes in the outbox), a new connection does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class HubWatchdog:
    def __init__(
        self,
        window_s: float,
        is_connected: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._is_connected = is_connected
        self._clock = clock
        self._pending: dict[int, float] = {}  # call token -> start time
        self._tokens = 0
        # Start of the oldest call that timed out since the last call that completed.
        self._trouble_since: float | None = None
        self._connected_since = clock()
        self._was_connected = True
        self.last_call_s = clock()

    async def watch(self, call: Awaitable[T], timeout_s: float) -> T:
        """Awaits ``call`` within ``timeout_s``; a timeout counts towards a wedge.

        The call itself is shielded: the SDK completes its own futures from its threads, and
        one cancelled under it makes asyncio log an InvalidStateError. A call that outlives
        its timeout finishes in the background, its outcome discarded.
        """
        started = self._clock()
        self.last_call_s = started
        self._tokens += 1
        token = self._tokens
        self._pending[token] = started
        task = asyncio.ensure_future(call)
        task.add_done_callback(_discard_outcome)
        try:
            result = await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            if self._trouble_since is None:
                self._trouble_since = started
            raise
        finally:
            del self._pending[token]
        self._trouble_since = None
        return result

    def stuck_for_s(self) -> float:
        """How long calls have gone without completing while the SDK says it is connected."""
        now = self._clock()
        connected = self._is_connected()
        if connected and not self._was_connected:
            # Evidence from before a reconnect says nothing about the new connection.
            self._connected_since = now
            self._trouble_since = None
        self._was_connected = connected
        if not connected:
            return 0.0
        starts = list(self._pending.values())
        if self._trouble_since is not None:
            starts.append(self._trouble_since)
        if not starts:
            return 0.0
        return now - max(min(starts), self._connected_since)

    async def run(
        self,
        probe: Callable[[], Awaitable[object]],
        probe_interval_s: float,
        call_timeout_s: float,
        on_wedged: Callable[[str], None],
        renew: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Checks until the connection is wedged, then calls ``on_wedged`` with why, once."""
        check_every_s = max(0.05, min(1.0, self.window_s / 4))
        probing: asyncio.Task[None] | None = None
        renewed = False
        try:
            while True:
                await asyncio.sleep(check_every_s)
                stuck = self.stuck_for_s()
                if not stuck:
                    renewed = False
                elif renew is not None and not renewed and stuck >= call_timeout_s:
                    renewed = True
                    await self._renew(renew, call_timeout_s)
                    stuck = self.stuck_for_s()
                if stuck > self.window_s:
                    on_wedged(
                        f"edgeHub connection wedged: the SDK reports connected, but no send or "
                        f"twin call has completed for {stuck:.0f} s (limit {self.window_s:.0f} s)"
                    )
                    return
                quiet = self._clock() - self.last_call_s >= probe_interval_s
                if quiet and (probing is None or probing.done()):
                    probing = asyncio.create_task(self._probe(probe, call_timeout_s))
        finally:
            if probing is not None:
                probing.cancel()
                await asyncio.gather(probing, return_exceptions=True)

    async def _renew(self, renew: Callable[[], Awaitable[None]], timeout_s: float) -> None:
        try:
            await self.watch(renew(), timeout_s)
        except Exception as e:  # then the window decides
            log.warning("starting over on a new edgeHub connection failed: %r", e)
            return
        log.warning("calls to edgeHub were stuck; now on a new connection")
        # Calls still stuck on the old connection say nothing about the new one.
        self._connected_since = self._clock()
        self._trouble_since = None

    async def _probe(self, probe: Callable[[], Awaitable[object]], timeout_s: float) -> None:
        try:
            await self.watch(probe(), timeout_s)
        except Exception as e:  # the verdict comes from stuck_for_s, not from one probe
            log.debug("hub probe failed: %r", e)


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    # Retrieved so that a call abandoned after its timeout does not log "never retrieved".
    if not task.cancelled():
        task.exception()
