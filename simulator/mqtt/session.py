"""Per-client-id session state: subscriptions, queued and in-flight deliveries.

A session outlives its connections when the client asks for one (clean_session=False): the
IoT SDK never re-subscribes after a reconnect, so subscriptions and unacknowledged QoS 1
messages must survive here. Memory stays bounded: the queue drops its oldest entries beyond
``Limits.max_queued_messages`` / ``max_queued_bytes``, and at most ``max_inflight`` QoS 1
messages wait for a PUBACK.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import Enum

from simulator.mqtt.limits import Limits
from simulator.mqtt.topics import topic_matches


class DeliveryResult(Enum):
    DELIVERED = "delivered"  # handed to the live connection; QoS 1 retried until acknowledged
    QUEUED = "queued"  # QoS 1 held for an offline persistent session
    DROPPED = "dropped"  # QoS 0 for an offline client: never queued, as MQTT allows
    NO_SUBSCRIPTION = "no_subscription"  # the session has no filter matching the topic
    NO_SESSION = "no_session"  # no client ever connected with this id, or its session ended


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    topic: str
    payload: bytes
    qos: int


class Session:
    def __init__(self, client_id: str, persistent: bool, limits: Limits) -> None:
        self.client_id = client_id
        self.persistent = persistent
        self.subscriptions: dict[str, int] = {}  # topic filter -> granted QoS
        self._limits = limits
        self._queue: deque[OutboundMessage] = deque()
        self._queued_bytes = 0
        # Insertion order is send order, which redelivery after a reconnect must keep.
        self._inflight: dict[int, OutboundMessage] = {}
        self._next_packet_id = 1
        self._work = asyncio.Event()

    def granted_qos(self, topic: str) -> int | None:
        """The highest QoS granted by any matching filter, or None if nothing matches."""
        granted = [qos for f, qos in self.subscriptions.items() if topic_matches(f, topic)]
        return max(granted, default=None)

    def enqueue(self, message: OutboundMessage) -> int:
        """Queue ``message`` for sending; return how many older messages were dropped."""
        self._queue.append(message)
        self._queued_bytes += len(message.payload)
        dropped = 0
        # The newest message always stays, even when it alone exceeds the byte budget.
        while len(self._queue) > 1 and (
            len(self._queue) > self._limits.max_queued_messages
            or self._queued_bytes > self._limits.max_queued_bytes
        ):
            self._queued_bytes -= len(self._queue.popleft().payload)
            dropped += 1
        self._work.set()
        return dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    def pop_sendable(self) -> OutboundMessage | None:
        """The next message to send, unless the queue is empty or the QoS 1 window is full."""
        if not self._queue:
            return None
        if self._queue[0].qos and len(self._inflight) >= self._limits.max_inflight:
            return None
        message = self._queue.popleft()
        self._queued_bytes -= len(message.payload)
        return message

    def track(self, message: OutboundMessage) -> int:
        """Hold a QoS 1 message until its PUBACK; return its fresh packet id."""
        packet_id = self._next_packet_id
        while packet_id in self._inflight:
            packet_id = packet_id % 0xFFFF + 1
        self._next_packet_id = packet_id % 0xFFFF + 1
        self._inflight[packet_id] = message
        return packet_id

    def acknowledge(self, packet_id: int) -> bool:
        if self._inflight.pop(packet_id, None) is None:
            return False
        self._work.set()
        return True

    def unacknowledged(self) -> list[tuple[int, OutboundMessage]]:
        return list(self._inflight.items())

    def forget_qos0(self) -> None:
        """QoS 0 messages are not kept for an absent client."""
        kept = deque(m for m in self._queue if m.qos)
        self._queue = kept
        self._queued_bytes = sum(len(m.payload) for m in kept)

    async def wait_for_work(self) -> None:
        """Return once a message was queued or a PUBACK opened the window."""
        self._work.clear()
        await self._work.wait()
