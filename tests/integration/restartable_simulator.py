"""A simulator that a test can restart: the same state directory, address and ports, a new
``Fleet`` (of one device) each time, as when the hub and edgeHub processes restart."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from simulator.fleet import Fleet
from tests.integration.e2e_support import fleet_settings, module_commands, short_state_dir


class RestartableSimulator:
    """``__init__`` only assigns; the first :meth:`start` makes ``sim``."""

    def __init__(self, manifest: Mapping[str, Any], extra_cert_names: tuple[str, ...]) -> None:
        self.state_dir = short_state_dir()
        settings = fleet_settings(self.state_dir, manifest)
        self.settings = replace(settings, extra_cert_names=extra_cert_names)
        self._sim: Fleet | None = None
        self.restarts = 0

    @property
    def sim(self) -> Fleet:
        if self._sim is None:
            raise RuntimeError("the simulator is not running")
        return self._sim

    async def start(self) -> None:
        self._sim = await Fleet.start(self.settings, module_commands(None))

    async def stop(self) -> None:
        sim, self._sim = self._sim, None
        if sim is None:
            return
        try:
            await sim.stop()
        finally:
            sim.kill_now()

    async def restart(
        self, down_s: float = 0.0, while_down: Callable[[], Awaitable[object]] | None = None
    ) -> Fleet:
        """Stops the simulator (every connection drops), stays down for ``down_s`` and until
        ``while_down()`` returns (clients are refused meanwhile), then starts a new one on
        the same state."""
        await self.stop()
        await asyncio.sleep(down_s)
        if while_down is not None:
            await while_down()
        await self.start()
        self.restarts += 1
        return self.sim


@asynccontextmanager
async def restartable_simulator(
    manifest: Mapping[str, Any], extra_cert_names: tuple[str, ...] = ()
) -> AsyncIterator[RestartableSimulator]:
    holder = RestartableSimulator(manifest, extra_cert_names)
    try:
        await holder.start()
        yield holder
    finally:
        try:
            await holder.stop()
        finally:
            shutil.rmtree(holder.state_dir, ignore_errors=True)
