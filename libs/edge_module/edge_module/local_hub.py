"""An in-process ``Hub``: what the module sends is kept in lists; tests and tools inject input.

Used by the classifier's scoring command, the in-process benchmarks and unit tests. It holds
the same contract as the SDK adapter: handlers are awaited on the caller's loop, and ``send`` fails
after ``close``. The end-to-end tests check the SDK adapter against the device simulator.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from edge_module.errors import HubError
from edge_module.hub import (
    DesiredHandler,
    InboundMessage,
    MessageHandler,
    MethodHandler,
    MethodResult,
    OutboundMessage,
    merge_patch,
)


class LocalHub:
    def __init__(self, desired: dict[str, Any] | None = None) -> None:
        self.sent: dict[str, list[OutboundMessage]] = defaultdict(list)
        self.reported: dict[str, Any] = {}
        # Like the twin, the desired document carries a $version that every change increments.
        self.desired: dict[str, Any] = dict(desired or {}) | {"$version": 1}
        self.connected = False
        self.renewals = 0
        self.ready = asyncio.Event()  # set on connect: the module is ready for input
        self._message_handler: MessageHandler | None = None
        self._desired_handler: DesiredHandler | None = None
        self._method_handler: MethodHandler | None = None

    async def connect(self) -> None:
        self.connected = True
        self.ready.set()

    async def renew(self) -> None:
        self.renewals += 1
        self.connected = True

    async def send(self, output: str, message: OutboundMessage) -> None:
        if not self.connected:
            raise HubError("not connected")
        self.sent[output].append(message)

    def on_message(self, handler: MessageHandler) -> None:
        self._message_handler = handler

    def on_desired_properties(self, handler: DesiredHandler) -> None:
        self._desired_handler = handler

    def on_method(self, handler: MethodHandler) -> None:
        self._method_handler = handler

    async def get_desired_properties(self) -> dict[str, Any]:
        return dict(self.desired)

    async def report(self, patch: dict[str, Any]) -> None:
        self.reported = merge_patch(self.reported, patch)

    async def close(self) -> None:
        self.connected = False

    # -- the test side ------------------------------------------------------------------

    async def deliver(self, message: InboundMessage) -> None:
        if self._message_handler is None:
            raise HubError("the module has not registered a message handler")
        await self._message_handler(message)

    async def push_desired(self, patch: dict[str, Any]) -> None:
        """Changes the desired document as the service would, then notifies the module."""
        version = int(self.desired["$version"]) + 1
        self.desired = merge_patch(self.desired, patch) | {"$version": version}
        if self._desired_handler is not None:
            await self._desired_handler(patch | {"$version": version})

    async def call_method(self, name: str, payload: Any) -> MethodResult:
        if self._method_handler is None:
            return MethodResult(501, {"error": f"no handler for {name}"})
        return await self._method_handler(name, payload)
