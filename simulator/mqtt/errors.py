"""The MQTT server's error tree.

    MqttError
    ├── MalformedPacketError          not a valid packet of the supported MQTT 3.1.1 subset
    │   └── UnsupportedProtocolError  a CONNECT for another protocol (answered with CONNACK 1)
    └── PublishRejectedError          raised by a hook to refuse a client's PUBLISH

MQTT 3.1.1 has no negative acknowledgement, so refusing anything a client sent means
closing its connection; these errors say why, and the server counts each kind.
"""

from __future__ import annotations


class MqttError(Exception):
    """Base of every error this package raises on purpose."""


class MalformedPacketError(MqttError):
    """The peer sent bytes that do not decode to a supported MQTT 3.1.1 packet."""


class UnsupportedProtocolError(MalformedPacketError):
    """A CONNECT whose protocol name or level is not MQTT 3.1.1 (``"MQTT"``, level 4)."""

    def __init__(self, protocol_name: str, protocol_level: int) -> None:
        super().__init__(f"unsupported protocol {protocol_name!r} level {protocol_level}")
        self.protocol_name = protocol_name
        self.protocol_level = protocol_level


class PublishRejectedError(MqttError):
    """Raised by ``BrokerHooks.on_publish`` to refuse a message; the connection is closed."""
