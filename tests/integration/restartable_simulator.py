"""A simulator that a test can restart: the same state directory, address and ports, a new
``Simulator`` object each time, as when edgeHub's process restarts on a device."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from simulator.app import Simulator, SimulatorSettings
from simulator.mqtt.testing import random_loopback_host


class RestartableSimulator:
    def __init__(self, manifest: Mapping[str, Any], extra_cert_names: tuple[str, ...]) -> None:
        # Short and outside pytest's tmp_path: the workload socket path must stay short.
        self.state_dir = Path(tempfile.mkdtemp(prefix="e2e-", dir="/tmp"))
        self.manifest = manifest
        self.settings = SimulatorSettings(
            state_dir=self.state_dir,
            address=random_loopback_host(),
            skip_unmapped_modules=True,
            module_stop_grace_s=5.0,
            extra_cert_names=extra_cert_names,
        )
        self.sim = Simulator(self.settings)
        self.restarts = 0

    async def start(self) -> None:
        await self.sim.start(self.manifest)

    async def stop(self) -> None:
        try:
            await self.sim.stop()
        finally:
            if self.sim.runtime is not None:
                self.sim.runtime.kill_now()

    async def restart(
        self, down_s: float = 0.0, while_down: Callable[[], Awaitable[object]] | None = None
    ) -> Simulator:
        """Stops the simulator (every connection drops), stays down for ``down_s`` and until
        ``while_down()`` returns (clients are refused meanwhile), then starts a new one on
        the same state."""
        await self.stop()
        await asyncio.sleep(down_s)
        if while_down is not None:
            await while_down()
        self.sim = Simulator(self.settings)
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
