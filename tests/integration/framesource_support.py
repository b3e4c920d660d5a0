"""Running the frame-source module in process, over ``LocalHub``, until it has sent enough."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simplejpeg

from edge_module.hub import OutboundMessage
from edge_module.local_hub import LocalHub
from framesource.app import FrameSourceModule
from framesource.config import FrameSourceConfig


@dataclass
class RunningSource:
    hub: LocalHub
    module: FrameSourceModule

    @property
    def sent(self) -> list[OutboundMessage]:
        return self.hub.sent["frames"]

    async def until(self, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; status: {self.module.status()}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_source(env: dict[str, str]) -> AsyncIterator[RunningSource]:
    hub = LocalHub()
    module = FrameSourceModule(hub, FrameSourceConfig.from_env({"CLAIM_CHECK_DIR": "off"} | env))
    stop = asyncio.Event()
    task = asyncio.create_task(module.run(stop))
    try:
        yield RunningSource(hub, module)
    finally:
        stop.set()
        await task


def pixels(message: OutboundMessage) -> npt.NDArray[np.uint8]:
    assert message.content_type == "image/jpeg"
    return np.asarray(simplejpeg.decode_jpeg(message.body), dtype=np.uint8)
