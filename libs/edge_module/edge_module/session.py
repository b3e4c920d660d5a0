"""A module's connection to edgeHub over its life: the outbox its messages leave through, the
wedge watchdog, and the orderly close.

Open: the outbox starts first (it holds what is produced before the connection is up), then
the hub connects, then the watchdog watches it; a wedged connection sets the module's stop
event, and ``wedged`` says why the module stopped. Close: stop watching, send what the outbox
holds (unless wedged: a wedged SDK would only hang), report the final state, close the
connection. Whatever the module must finish first (score what it holds) happens between
``stop_watching`` and ``close``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from edge_module.counting import Counting
from edge_module.hub import Hub
from edge_module.hub_settings import HubSettings
from edge_module.outbox import Outbox
from edge_module.watchdog import HubWatchdog

log = logging.getLogger(__name__)


class HubSession:
    def __init__(self, hub: Hub, settings: HubSettings, counts: Counting) -> None:
        self.hub = hub
        self.settings = settings
        self.watchdog = HubWatchdog(settings.wedge_timeout_s, lambda: hub.connected)
        self.outbox = Outbox(hub, settings.outbox, counts, self.watchdog)
        self.wedged = asyncio.Event()
        self.wedged_reason = ""
        self._watching: asyncio.Task[None] | None = None

    async def open(self, stop: asyncio.Event) -> None:
        self.outbox.start()
        await self.hub.connect()
        settings = self.settings
        self._watching = asyncio.create_task(
            self.watchdog.run(
                self.hub.get_desired_properties,
                settings.probe_interval_s,
                settings.outbox.call_timeout_s,
                lambda why: self._on_wedged(why, stop),
                self.hub.renew,
            ),
            name="hub-watchdog",
        )

    async def stop_watching(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)

    async def close(self, flush_s: float, final_report: dict[str, Any] | None = None) -> None:
        """Sends what is queued within ``flush_s``, reports ``final_report``, disconnects."""
        await self.stop_watching()
        if not self.wedged.is_set():
            await self.outbox.flush(flush_s)
        await self.outbox.close()
        if self.wedged.is_set():
            return  # a wedged SDK does not close; the process ends without it
        if final_report is not None:
            try:
                await asyncio.wait_for(self.hub.report(final_report), 5.0)
            except Exception as e:  # the hub may already be gone; shutdown goes on
                log.warning("could not report the final state: %s", e)
        try:
            await asyncio.wait_for(self.hub.close(), 10.0)
        except Exception as e:  # the process ends regardless
            log.warning("the hub connection did not close cleanly: %r", e)

    def _on_wedged(self, why: str, stop: asyncio.Event) -> None:
        log.error("%s; exiting so that edgeAgent restarts the module", why)
        self.wedged_reason = why
        self.wedged.set()
        stop.set()
