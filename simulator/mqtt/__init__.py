"""MQTT 3.1.1 server core for the simulator's edgeHub (asyncio, TLS, loopback only).

edgeHub is not a topic broker: no client's PUBLISH is fanned out to other subscribers.
Every inbound PUBLISH goes to the hub layer's ``BrokerHooks.on_publish``, and the hub sends
to a client with ``MqttServer.deliver``, which honours that client's subscriptions.

Public surface::

    server = MqttServer(hooks, ssl_context, Limits())   # ssl_context None = plain TCP (tests)
    await server.start("127.0.0.2", 8883)               # port 0 picks a free port: server.port
    await server.deliver(client_id, topic, payload, qos=1) -> DeliveryResult
        # DELIVERED (live connection) | QUEUED (QoS 1, offline persistent session)
        # | DROPPED (QoS 0, offline) | NO_SUBSCRIPTION | NO_SESSION
    server.is_connected(client_id) -> bool
    server.subscriptions(client_id) -> frozenset[str]
    await server.disconnect(client_id)                  # server-side drop; the session stays
    server.stats -> ServerStats                         # snapshot of the counters
    await server.stop()

    class BrokerHooks(Protocol):                        # implemented by the hub layer
        def authenticate(client_id, username, password) -> ConnackCode
        def may_subscribe(client: ClientInfo, topic_filter) -> bool      # False: SUBACK 0x80
        async def on_connected(client, session_present) / on_disconnected(client)
        async def on_subscribed(client, topic_filter)
        async def on_publish(client, topic, payload, qos)   # raise PublishRejectedError to refuse

Behaviour the IoT SDK relies on (``shared/design/iot-edge-facts.md`` section 1):

- Sessions: ``clean_session=False`` keeps a client id's subscriptions and its QoS 1
  deliveries across reconnects (queued while away, bounded, drop-oldest, counted);
  unacknowledged QoS 1 messages are re-sent with DUP on reconnect; ``clean_session=True``
  discards the session. A second connection with the same id takes over (the old one is
  closed and the hub hears its ``on_disconnected`` first).
- A QoS 1 PUBACK is sent only after ``on_publish`` returned, so an SDK send completes once
  the hub accepted the message; ``on_publish`` runs in order per connection.
- ``ClientInfo.connection_id`` is unique per connection, so ``$iothub/...`` requests and
  their responses can be scoped to the connection that made them.
- Granted QoS is at most 1; a QoS 2 PUBLISH closes the connection. Retained messages and
  wills are accepted on the wire and ignored (edgeHub offers neither to modules).

Robustness: the remaining length is checked against ``Limits.max_packet_bytes`` before a body
is read and payloads above edgeHub's 262,144 bytes close the connection; malformed packets,
keepalive expiry (1.5 x keepalive), slow readers and TLS failures close only the connection
concerned. ``codec`` holds the packet codec; ``testing`` holds test doubles for hub tests.
"""

from simulator.mqtt.errors import (
    MalformedPacketError,
    MqttError,
    PublishRejectedError,
    UnsupportedProtocolError,
)
from simulator.mqtt.hooks import BrokerHooks, ClientInfo
from simulator.mqtt.limits import EDGEHUB_MAX_MESSAGE_BYTES, Limits, ServerStats
from simulator.mqtt.packets import ConnackCode
from simulator.mqtt.server import MqttServer
from simulator.mqtt.session import DeliveryResult

__all__ = [
    "EDGEHUB_MAX_MESSAGE_BYTES",
    "BrokerHooks",
    "ClientInfo",
    "ConnackCode",
    "DeliveryResult",
    "Limits",
    "MalformedPacketError",
    "MqttError",
    "MqttServer",
    "PublishRejectedError",
    "ServerStats",
    "UnsupportedProtocolError",
]
