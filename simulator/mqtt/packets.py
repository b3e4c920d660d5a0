"""MQTT 3.1.1 packets of the subset this server speaks, as validated immutable values.

Constructing a packet with a field MQTT 3.1.1 forbids raises ``ValueError``; the codec turns
that into ``MalformedPacketError`` when the fields came off the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from simulator.mqtt.topics import is_valid_topic_name

MAX_REMAINING_LENGTH = 268_435_455
SUBACK_FAILURE = 0x80
_UINT16_MAX = 0xFFFF


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(IntEnum):
    ACCEPTED = 0
    BAD_PROTOCOL = 1
    ID_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_CREDENTIALS = 4
    NOT_AUTHORIZED = 5


def _check_string(value: str, what: str) -> None:
    # U+0000 is forbidden in MQTT strings [MQTT-1.5.3-2]; encode() rejects lone surrogates.
    if "\x00" in value:
        raise ValueError(f"{what} contains U+0000")
    if len(value.encode("utf-8")) > _UINT16_MAX:
        raise ValueError(f"{what} is longer than 65,535 bytes")


def _check_binary(value: bytes, what: str) -> None:
    if len(value) > _UINT16_MAX:
        raise ValueError(f"{what} is longer than 65,535 bytes")


def _check_packet_id(packet_id: int) -> None:
    if not 1 <= packet_id <= _UINT16_MAX:
        raise ValueError(f"packet id {packet_id} is outside 1..65535")


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ValueError(f"QoS {qos} is not 0, 1 or 2")


def _check_topic_name(topic: str) -> None:
    _check_string(topic, "topic")
    if not is_valid_topic_name(topic):
        raise ValueError(f"{topic!r} is not a valid topic name")


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False

    def __post_init__(self) -> None:
        _check_topic_name(self.topic)
        _check_binary(self.payload, "will payload")
        _check_qos(self.qos)


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    clean_session: bool = True
    keepalive_s: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None

    def __post_init__(self) -> None:
        _check_string(self.client_id, "client id")
        if not 0 <= self.keepalive_s <= _UINT16_MAX:
            raise ValueError(f"keepalive {self.keepalive_s} is outside 0..65535")
        if self.username is not None:
            _check_string(self.username, "username")
        if self.password is not None:
            _check_binary(self.password, "password")
            if self.username is None:
                raise ValueError("a password needs a username in MQTT 3.1.1")


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool = False
    return_code: int = ConnackCode.ACCEPTED

    def __post_init__(self) -> None:
        if self.return_code not in tuple(ConnackCode):
            raise ValueError(f"CONNACK return code {self.return_code} is not 0..5")
        if self.session_present and self.return_code != ConnackCode.ACCEPTED:
            raise ValueError("a refused CONNACK must not claim a session [MQTT-3.2.2-4]")


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    packet_id: int | None = None
    dup: bool = False
    retain: bool = False

    def __post_init__(self) -> None:
        _check_topic_name(self.topic)
        _check_qos(self.qos)
        if self.qos == 0:
            if self.packet_id is not None:
                raise ValueError("a QoS 0 PUBLISH has no packet id")
            if self.dup:
                raise ValueError("a QoS 0 PUBLISH cannot be a duplicate [MQTT-3.3.1-2]")
        elif self.packet_id is None:
            raise ValueError("a QoS 1 or 2 PUBLISH needs a packet id")
        else:
            _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class Puback:
    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    requests: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)
        if not self.requests:
            raise ValueError("a SUBSCRIBE needs at least one topic filter [MQTT-3.8.3-3]")
        for topic_filter, qos in self.requests:
            _check_string(topic_filter, "topic filter")
            _check_qos(qos)


@dataclass(frozen=True, slots=True)
class Suback:
    packet_id: int
    return_codes: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)
        if not self.return_codes:
            raise ValueError("a SUBACK needs at least one return code")
        if any(code not in (0, 1, 2, SUBACK_FAILURE) for code in self.return_codes):
            raise ValueError(f"bad SUBACK return codes {self.return_codes}")


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)
        if not self.topic_filters:
            raise ValueError("an UNSUBSCRIBE needs at least one topic filter [MQTT-3.10.3-2]")
        for topic_filter in self.topic_filters:
            _check_string(topic_filter, "topic filter")


@dataclass(frozen=True, slots=True)
class Unsuback:
    packet_id: int

    def __post_init__(self) -> None:
        _check_packet_id(self.packet_id)


@dataclass(frozen=True, slots=True)
class Pingreq:
    pass


@dataclass(frozen=True, slots=True)
class Pingresp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    pass


Packet = (
    Connect
    | Connack
    | Publish
    | Puback
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
)
