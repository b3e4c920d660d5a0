"""paho-mqtt under the MQTT hub: the only file that imports paho. See docs/mqtt.md.

Why paho 1.6.1 and not 2: azure-iot-device, which the edgeHub transport needs in the same
environment, requires paho-mqtt below 2. 1.6.1 speaks MQTT v5 fully (properties, shared
subscriptions, clean start, session expiry, reason codes); what it lacks is paho 2's
``manual_ack`` and the reason code of a PUBACK. ``BrokerClient`` adds both at the one place
1.6.1 handles each packet (``_send_puback``, ``_handle_pubackcomp``, pinned in
constraints.txt); the broker tests fail if a paho upgrade moves them.
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes

from edge_module.hub import InboundMessage, OutboundMessage
from edge_module.mqtt_settings import MqttSettings

# User properties that carry what IoT Hub messages have as system properties.
MESSAGE_ID = "message-id"
CONTENT_ENCODING = "content-encoding"
STATUS = "status"  # a method response's status code
SOURCE_MODULE = "$.cmid"  # what edgeHub sets: the sending module, here the publishing client
_RESERVED = {MESSAGE_ID, CONTENT_ENCODING}

MQTT_ERR_SUCCESS: int = paho.MQTT_ERR_SUCCESS


class BrokerClient(paho.Client):  # type: ignore[misc]  # paho ships no annotations
    """paho's MQTT v5 client with acknowledgements the owner sends (``acknowledge``) and the
    reason code of every PUBACK kept (``puback_reasons``)."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id=client_id, protocol=paho.MQTTv5)
        # Written on paho's thread just before on_publish runs there; read in on_publish.
        self.puback_reasons: dict[int, int] = {}

    def _send_puback(self, mid: int) -> int:
        # 1.6.1 calls this as soon as on_message returns; the hub acknowledges a frame only
        # once its outcome is out, so it is held here and sent by acknowledge().
        return MQTT_ERR_SUCCESS

    def acknowledge(self, mid: int) -> None:
        """PUBACK for an inbound QoS 1 message. Safe from any thread (paho's own queue)."""
        super()._send_puback(mid)

    def _handle_pubackcomp(self, cmd: str) -> int:
        packet = self._in_packet["packet"]
        if cmd == "PUBACK" and len(packet) > 2:
            (mid,) = struct.unpack("!H", packet[:2])
            self.puback_reasons[mid] = packet[2]
        result: int = super()._handle_pubackcomp(cmd)
        return result


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


def check_tls(settings: MqttSettings, timeout_s: float) -> None:
    """One TLS handshake with the broker, raising what it meets (``ssl.SSLError``, ``OSError``).

    Why: paho 1.6.1 leaves the socket of a failed handshake open; trying first here gives
    the same error with nothing left behind."""
    with (
        socket.create_connection((settings.host, settings.port), timeout_s) as raw,
        tls_context(settings).wrap_socket(raw, server_hostname=settings.host),
    ):
        pass


def new_client(settings: MqttSettings, receive_maximum: int) -> BrokerClient:
    client = BrokerClient(settings.client_id)
    if settings.tls:
        client.tls_set_context(tls_context(settings))
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    client.reconnect_delay_set(1, 30)
    client.max_inflight_messages_set(receive_maximum)
    return client


def connect_properties(settings: MqttSettings, receive_maximum: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = settings.session_expiry_s
    # The broker sends at most this many unacknowledged messages: the hub's intake bound.
    properties.ReceiveMaximum = receive_maximum
    if settings.auth_method:
        properties.AuthenticationMethod = settings.auth_method
        if settings.auth_data_file is not None:
            properties.AuthenticationData = settings.auth_data_file.read_bytes()
    return properties


def reason_text(code: int, packet_type: int = PacketTypes.PUBACK) -> str:
    try:
        return f"{ReasonCodes(packet_type, identifier=code)} (0x{code:02x})"
    except KeyError:
        return f"reason code 0x{code:02x}"


def code_of(reason: Any) -> int:
    """paho hands reason codes as ``ReasonCodes`` objects in v5, plain ints elsewhere."""
    return int(reason.value) if isinstance(reason, ReasonCodes) else int(reason)


def publish_properties(message: OutboundMessage) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    if message.content_type:
        properties.ContentType = message.content_type
    if message.correlation_id is not None:
        properties.CorrelationData = message.correlation_id.encode("utf-8")
    user = [(CONTENT_ENCODING, message.content_encoding)] if message.content_encoding else []
    if message.message_id is not None:
        user.append((MESSAGE_ID, message.message_id))
    user.extend((str(k), str(v)) for k, v in message.properties.items())
    if user:
        properties.UserProperty = user
    return properties


def response_properties(correlation: bytes | None, status: int) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    if correlation is not None:
        properties.CorrelationData = correlation
    properties.UserProperty = [(STATUS, str(status))]
    return properties


def request_properties(response_topic: str, correlation: bytes) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    properties.ResponseTopic = response_topic
    properties.CorrelationData = correlation
    return properties


def user_properties(message: Any) -> dict[str, str]:
    properties = getattr(message, "properties", None)
    pairs = getattr(properties, "UserProperty", None) or []
    return {str(k): str(v) for k, v in pairs}


def correlation_of(message: Any) -> bytes | None:
    data = getattr(getattr(message, "properties", None), "CorrelationData", None)
    return bytes(data) if data is not None else None


def response_topic_of(message: Any) -> str | None:
    topic = getattr(getattr(message, "properties", None), "ResponseTopic", None)
    return str(topic) if topic else None


def inbound(message: Any, input_name: str, source: str) -> InboundMessage:
    user = user_properties(message)
    correlation = correlation_of(message)
    properties = {k: v for k, v in user.items() if k not in _RESERVED}
    properties.setdefault(SOURCE_MODULE, source)
    return InboundMessage(
        input_name=input_name,
        body=bytes(message.payload),
        content_type=getattr(message.properties, "ContentType", None),
        content_encoding=user.get(CONTENT_ENCODING),
        message_id=user.get(MESSAGE_ID),
        correlation_id=correlation.decode("utf-8", "replace") if correlation else None,
        properties=properties,
    )
