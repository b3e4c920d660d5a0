"""Per-client-id session state: subscriptions, queued and in-flight deliveries.

A session outlives its connections when the client asks for one (clean_session=False): the
IoT SDK never re-subscribes after a reconnect, so subscriptions and unacknowledged QoS 1
messages must survive here. Memory stays bounded: the queue drops its oldest entries beyond
``Limits.max_queued_messages`` / ``max_queued_bytes``, and at most ``max_inflight`` QoS 1
messages wait for a PUBACK.

With a ``SessionStore`` a persistent session writes its subscriptions and QoS 1 messages
through to disk (``session_store``), so a restarted server resumes it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum

from simulator.mqtt.limits import Limits
from simulator.mqtt.session_store import SessionStore, StoredSession
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
    stored_id: int | None = None  # its row in the SessionStore, while it is kept there


class Session:
    def __init__(
        self,
        client_id: str,
        persistent: bool,
        limits: Limits,
        store: SessionStore | None = None,
    ) -> None:
        self.client_id = client_id
        self.persistent = persistent
        self.subscriptions: dict[str, int] = {}  # topic filter -> granted QoS
        self._limits = limits
        # Only persistent sessions outlive their connection, so only they are written down.
        self._store = store if persistent else None
        self._queue: deque[OutboundMessage] = deque()
        self._queued_bytes = 0
        # Insertion order is send order, which redelivery after a reconnect must keep.
        self._inflight: dict[int, OutboundMessage] = {}
        self._next_packet_id = 1
        self._work = asyncio.Event()

    @classmethod
    def restored(
        cls, client_id: str, stored: StoredSession, limits: Limits, store: SessionStore
    ) -> Session:
        """A persistent session as a previous server left it: subscriptions, and its QoS 1
        messages queued again (those that were in flight are sent again with new ids)."""
        session = cls(client_id, True, limits, store)
        session.subscriptions = dict(stored.subscriptions)
        for row_id, topic, payload in stored.messages:
            session._queue.append(OutboundMessage(topic, payload, 1, row_id))
            session._queued_bytes += len(payload)
        if session._queue:
            session._work.set()
        return session

    def begin(self) -> None:
        """Records a new persistent session (the server has forgotten any earlier one)."""
        if self._store is not None:
            self._store.begin(self.client_id)

    def subscribe(self, topic_filter: str, qos: int) -> None:
        self.subscriptions[topic_filter] = qos
        if self._store is not None:
            self._store.subscribe(self.client_id, topic_filter, qos)

    def unsubscribe(self, topic_filter: str) -> None:
        self.subscriptions.pop(topic_filter, None)
        if self._store is not None:
            self._store.unsubscribe(self.client_id, topic_filter)

    def granted_qos(self, topic: str) -> int | None:
        """The highest QoS granted by any matching filter, or None if nothing matches."""
        granted = [qos for f, qos in self.subscriptions.items() if topic_matches(f, topic)]
        return max(granted, default=None)

    def enqueue(self, message: OutboundMessage) -> int:
        """Queue ``message`` for sending; return how many older messages were dropped."""
        if self._store is not None and message.qos:
            row_id = self._store.add_message(self.client_id, message.topic, message.payload)
            message = replace(message, stored_id=row_id)
        self._queue.append(message)
        self._queued_bytes += len(message.payload)
        dropped = 0
        # The newest message always stays, even when it alone exceeds the byte budget.
        while len(self._queue) > 1 and (
            len(self._queue) > self._limits.max_queued_messages
            or self._queued_bytes > self._limits.max_queued_bytes
        ):
            victim = self._queue.popleft()
            self._queued_bytes -= len(victim.payload)
            self._unstore(victim)
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
        message = self._inflight.pop(packet_id, None)
        if message is None:
            return False
        self._unstore(message)
        self._work.set()
        return True

    def _unstore(self, message: OutboundMessage) -> None:
        if self._store is not None and message.stored_id is not None:
            self._store.remove_message(message.stored_id)

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
