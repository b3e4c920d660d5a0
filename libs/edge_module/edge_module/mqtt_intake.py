"""Frames into the MQTT hub: the bounded intake, one consumer in arrival order, and when each
frame is acknowledged (``mqtt_acks``).

Mosquitto 2.0 keeps to the receive window, except when a session resumes: then it sends the
whole backlog queued for the client at once. Overflow policy "leave it unacknowledged and
reconnect": what does not fit is dropped here unacknowledged, and once the intake has drained
the hub reconnects, so that the broker resends every unacknowledged message of the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from edge_module.counting import Counting
from edge_module.hub import InboundMessage, MessageHandler
from edge_module.mqtt_acks import Acknowledgements

log = logging.getLogger(__name__)


class FrameIntake:
    def __init__(
        self,
        capacity: int,
        acks: Acknowledgements,
        acknowledge: Callable[[int], None],
        reconnect: Callable[[], Awaitable[None]],
        metrics: Counting,
        id_prefix: str,
    ) -> None:
        self.handler: MessageHandler | None = None
        self._queue: asyncio.Queue[tuple[InboundMessage, int, bytes]] = asyncio.Queue(capacity)
        self._acks = acks
        self._acknowledge = acknowledge
        self._reconnect = reconnect
        self._metrics = metrics
        self._id_prefix = id_prefix
        self._ids = itertools.count(1)
        self._overflowed = False

    def take(self, message: InboundMessage, packet_id: int) -> None:
        """A frame from paho (on the loop); queued, or acknowledged if answered before."""
        if message.message_id is None and message.correlation_id is None:
            # The id its outcome will carry, so that the outcome can settle it.
            message = replace(message, message_id=f"{self._id_prefix}-{next(self._ids)}")
        digest = _digest(message)
        if self._answered(message, digest, packet_id):
            return
        try:
            self._queue.put_nowait((message, packet_id, digest))
        except asyncio.QueueFull:
            self._metrics.count("mqtt_intake_overflows")
            if not self._overflowed:
                log.warning(
                    "the broker sent more than the intake holds (%d): the rest is left "
                    "unacknowledged, to be resent after a reconnect",
                    self._queue.maxsize,
                )
            self._overflowed = True

    async def dispatch(self) -> None:
        """Runs for the hub's life. One consumer keeps arrival order, as the SDK adapter's."""
        while True:
            message, packet_id, digest = await self._queue.get()
            # Checked again: the first copy may have been answered while this one waited.
            if not self._answered(message, digest, packet_id):
                # Held before the handler runs: the outcome may go before the handler returns.
                frame_id = message.message_id or message.correlation_id or ""
                self._acks.hold(frame_id, packet_id, asyncio.get_running_loop().time(), digest)
                await self._handle(message)
            if self._overflowed and self._queue.empty():
                self._overflowed = False
                log.info("intake drained: reconnecting for the messages left unacknowledged")
                await self._reconnect()

    async def expire(self, period_s: float) -> None:
        """Runs for the hub's life: acknowledges frames held past the timeout."""
        while True:
            await asyncio.sleep(period_s)
            due = self._acks.expired(asyncio.get_running_loop().time())
            for packet_id in due:
                self._acknowledge(packet_id)
            if due:
                self._metrics.count("mqtt_acks_without_outcome", len(due))
                log.warning("%d input messages acknowledged without an outcome", len(due))

    def _answered(self, message: InboundMessage, digest: bytes, packet_id: int) -> bool:
        if not self._acks.answered(message.message_id or message.correlation_id or "", digest):
            return False
        self._metrics.count("mqtt_redeliveries_answered_before")
        self._acknowledge(packet_id)
        return True

    async def _handle(self, message: InboundMessage) -> None:
        if self.handler is None:
            log.warning("message on input %r before a handler was set", message.input_name)
            return
        try:
            await self.handler(message)
        except Exception:
            log.exception("message handler failed on input %r", message.input_name)


def _digest(message: InboundMessage) -> bytes:
    properties = json.dumps(sorted(message.properties.items())).encode()
    return hashlib.blake2b(message.body + b"\0" + properties, digest_size=16).digest()
