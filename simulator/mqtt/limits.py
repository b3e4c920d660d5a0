"""What the server tolerates per client (``Limits``) and what it counts (``ServerStats``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from simulator.mqtt.packets import MAX_REMAINING_LENGTH

EDGEHUB_MAX_MESSAGE_BYTES = 262_144  # fixed in edgeHub, not configurable there
# A PUBLISH body is the topic (2-byte length + up to 65,535 bytes), a packet id and the payload.
_PUBLISH_HEADROOM_BYTES = 2 + 65_535 + 2


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = EDGEHUB_MAX_MESSAGE_BYTES
    # Checked against the fixed header before the body is read, so nothing larger is buffered.
    max_packet_bytes: int = EDGEHUB_MAX_MESSAGE_BYTES + _PUBLISH_HEADROOM_BYTES
    max_queued_messages: int = 1_000  # per session; the oldest is dropped beyond this
    max_queued_bytes: int = 64 * 1024 * 1024  # per session, payload bytes; drop-oldest too
    max_inflight: int = 32  # unacknowledged QoS 1 deliveries per session
    max_subscriptions: int = 64  # per session; more are refused with SUBACK 0x80
    max_clients: int = 1_000  # open network connections, authenticated or not
    connect_timeout_s: float = 10.0  # TLS handshake, then again for the CONNECT packet
    packet_timeout_s: float = 30.0  # to finish a packet once its first bytes arrived
    write_timeout_s: float = 30.0  # a client that stops reading this long is dropped
    takeover_timeout_s: float = 5.0  # wait for a replaced connection to wind down

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"Limits.{field.name} must be positive")
        if self.max_packet_bytes > MAX_REMAINING_LENGTH:
            raise ValueError(f"max_packet_bytes cannot exceed {MAX_REMAINING_LENGTH}")
        if self.max_inflight >= 0xFFFF:
            raise ValueError("max_inflight must leave packet ids free")


Counter = Literal[
    "connects_refused",
    "connect_timeouts",
    "keepalive_timeouts",
    "malformed_packets",
    "oversized_packets",
    "protocol_errors",
    "rejected_publishes",
    "slow_readers",
    "internal_errors",
]


@dataclass(slots=True)
class ServerStats:
    connections: int = 0  # network connections that completed TLS
    over_capacity: int = 0  # of those, closed at once because max_clients were open
    connects_accepted: int = 0
    connects_refused: int = 0  # every non-zero CONNACK
    auth_failures: int = 0  # of those, CONNACK 4 or 5
    takeovers: int = 0  # connections closed because a newer one used their client id
    connect_timeouts: int = 0
    keepalive_timeouts: int = 0
    malformed_packets: int = 0
    oversized_packets: int = 0
    protocol_errors: int = 0  # well-formed but not allowed here (QoS 2, a second CONNECT, ...)
    rejected_publishes: int = 0  # on_publish raised PublishRejectedError
    slow_readers: int = 0  # closed because writes stayed blocked past write_timeout_s
    internal_errors: int = 0  # a hook or the server failed; logged with a traceback
    messages_in: int = 0
    messages_out: int = 0
    dropped_queued: int = 0  # deliveries dropped from full session queues (drop-oldest)

    def bump(self, counter: Counter) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
