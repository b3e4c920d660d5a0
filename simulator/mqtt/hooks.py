"""The seam between the MQTT server and the hub layer that owns every routing decision.

edgeHub is not a topic broker: a client's PUBLISH is never fanned out to other subscribers.
Each one goes to ``BrokerHooks.on_publish``; the hub decides what to deliver to whom and
calls ``MqttServer.deliver``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from simulator.mqtt.packets import ConnackCode


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One accepted connection. ``connection_id`` is unique per connection (never reused),
    so request/response state such as ``$iothub/...?$rid=`` can be scoped to it."""

    client_id: str
    username: str | None
    peer: str  # "address:port"
    connection_id: int


class BrokerHooks(Protocol):
    def authenticate(
        self, client_id: str, username: str | None, password: bytes | None
    ) -> ConnackCode:
        """Decide a CONNECT; runs on the event loop, so it must be quick (no I/O)."""
        ...

    def may_subscribe(self, client: ClientInfo, topic_filter: str) -> bool:
        """False refuses that filter (SUBACK 0x80); the others in the packet may still pass."""
        ...

    async def on_connected(self, client: ClientInfo, session_present: bool) -> None:
        """After CONNACK was sent; queued messages of a resumed session are being sent."""
        ...

    async def on_disconnected(self, client: ClientInfo) -> None:
        """Once per accepted connection, after its network connection closed. Match it to
        ``on_connected`` by ``connection_id``: a replaced connection whose hook hangs past
        ``Limits.takeover_timeout_s`` reports after its successor connected."""
        ...

    async def on_subscribed(self, client: ClientInfo, topic_filter: str) -> None:
        """After the SUBACK that granted ``topic_filter`` (e.g. to flush held messages)."""
        ...

    async def on_publish(self, client: ClientInfo, topic: str, payload: bytes, qos: int) -> None:
        """A client's PUBLISH, in order per connection. A QoS 1 PUBACK is sent only after
        this returns; raising ``PublishRejectedError`` closes the connection without a PUBACK."""
        ...
