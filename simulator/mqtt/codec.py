"""MQTT 3.1.1 codec for the packets in ``packets``.

Supported: CONNECT, CONNACK, PUBLISH (QoS 0, 1, and 2 so the server can recognise and refuse
it), PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT. The
QoS 2 flow (PUBREC, PUBREL, PUBCOMP) and the reserved types 0 and 15 decode as malformed.

Decoding comes in two steps so that a server can refuse an oversized packet from its fixed
header alone, before it reads (and buffers) the body:

    decode_fixed_header(first 2..5 bytes) -> FixedHeader, or None when more bytes are needed
    decode_body(header, body)             -> Packet

``decode(buffer)`` combines both. Decoding raises only ``MalformedPacketError`` (and its
subclass ``UnsupportedProtocolError``). It is strict and canonical: whatever decodes
re-encodes to the same bytes (minimal remaining length, reserved bits zero), which lets the
fuzz tests catch any lenient parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.mqtt.errors import MalformedPacketError, UnsupportedProtocolError
from simulator.mqtt.packets import (
    MAX_REMAINING_LENGTH,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)

# ---------------------------------------------------------------------------------- encoding


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _u16(len(raw)) + raw


def _binary(value: bytes) -> bytes:
    return _u16(len(value)) + value


def encode_remaining_length(length: int) -> bytes:
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} cannot be encoded")
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | 0x80 if length else digit)
        if not length:
            return bytes(out)


def _connect_body(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    tail = _string(packet.client_id)
    if packet.will is not None:
        flags |= 0x04 | (packet.will.qos << 3) | (0x20 if packet.will.retain else 0)
        tail += _string(packet.will.topic) + _binary(packet.will.payload)
    if packet.username is not None:
        flags |= 0x80
        tail += _string(packet.username)
    if packet.password is not None:
        flags |= 0x40
        tail += _binary(packet.password)
    return _string("MQTT") + bytes((4, flags)) + _u16(packet.keepalive_s) + tail


def _encode_parts(packet: Packet) -> tuple[int, bytes]:
    """The first byte (type and flags) and the body of ``packet``."""
    match packet:
        case Connect():
            return PacketType.CONNECT << 4, _connect_body(packet)
        case Connack(session_present=present, return_code=code):
            return PacketType.CONNACK << 4, bytes((1 if present else 0, code))
        case Publish():
            flags = (0x08 if packet.dup else 0) | (packet.qos << 1) | (1 if packet.retain else 0)
            packet_id = b"" if packet.packet_id is None else _u16(packet.packet_id)
            body = _string(packet.topic) + packet_id + packet.payload
            return PacketType.PUBLISH << 4 | flags, body
        case Puback(packet_id=packet_id):
            return PacketType.PUBACK << 4, _u16(packet_id)
        case Subscribe(packet_id=packet_id, requests=requests):
            body = _u16(packet_id) + b"".join(_string(f) + bytes((q,)) for f, q in requests)
            return PacketType.SUBSCRIBE << 4 | 0x02, body
        case Suback(packet_id=packet_id, return_codes=codes):
            return PacketType.SUBACK << 4, _u16(packet_id) + bytes(codes)
        case Unsubscribe(packet_id=packet_id, topic_filters=filters):
            body = _u16(packet_id) + b"".join(_string(f) for f in filters)
            return PacketType.UNSUBSCRIBE << 4 | 0x02, body
        case Unsuback(packet_id=packet_id):
            return PacketType.UNSUBACK << 4, _u16(packet_id)
        case Pingreq():
            return PacketType.PINGREQ << 4, b""
        case Pingresp():
            return PacketType.PINGRESP << 4, b""
        case Disconnect():
            return PacketType.DISCONNECT << 4, b""


def encode(packet: Packet) -> bytes:
    first_byte, body = _encode_parts(packet)
    return bytes((first_byte,)) + encode_remaining_length(len(body)) + body


# ---------------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class FixedHeader:
    packet_type: PacketType
    flags: int
    remaining_length: int
    size: int  # bytes the fixed header itself takes (2..5)


# SUBSCRIBE and UNSUBSCRIBE carry the fixed flags 0b0010 [MQTT-3.8.1-1]; the rest carry zero.
_TYPE_VALUES = frozenset(int(t) for t in PacketType)
_FIXED_FLAGS = {
    t: 0x02 if t in (PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE) else 0 for t in PacketType
}


def decode_fixed_header(data: bytes | bytearray) -> FixedHeader | None:
    """Parse a fixed header from the start of ``data``; None when it is not complete yet."""
    if not data:
        return None
    type_value, flags = data[0] >> 4, data[0] & 0x0F
    if type_value not in _TYPE_VALUES:
        raise MalformedPacketError(f"packet type {type_value} is not supported")
    packet_type = PacketType(type_value)
    if packet_type is PacketType.PUBLISH:
        if (flags >> 1) & 0x03 == 3:
            raise MalformedPacketError("PUBLISH with QoS 3")
    elif flags != _FIXED_FLAGS[packet_type]:
        raise MalformedPacketError(f"{packet_type.name} with fixed-header flags {flags:#x}")
    length = 0
    for index in range(4):
        if 1 + index >= len(data):
            return None
        digit = data[1 + index]
        length |= (digit & 0x7F) << (7 * index)
        if not digit & 0x80:
            # A trailing zero digit means a longer encoding than needed; refusing it keeps
            # decoding canonical (one byte sequence per packet).
            if index and not digit:
                raise MalformedPacketError("remaining length is not minimally encoded")
            return FixedHeader(packet_type, flags, length, 2 + index)
    raise MalformedPacketError("remaining length runs past four bytes")


class _Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, count: int) -> bytes:
        end = self._pos + count
        if end > len(self._data):
            raise MalformedPacketError("packet body ends inside a field")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        return self.binary().decode("utf-8")  # UnicodeDecodeError is a ValueError

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._pos)

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)


def _decode_connect(flags: int, reader: _Reader) -> Connect:
    name, level = reader.string(), reader.u8()
    if (name, level) != ("MQTT", 4):
        raise UnsupportedProtocolError(name, level)
    connect_flags = reader.u8()
    if connect_flags & 0x01:
        raise MalformedPacketError("CONNECT reserved flag is set [MQTT-3.1.2-3]")
    keepalive_s = reader.u16()
    client_id = reader.string()
    will = None
    if connect_flags & 0x04:
        topic, payload = reader.string(), reader.binary()
        will = Will(topic, payload, (connect_flags >> 3) & 0x03, bool(connect_flags & 0x20))
    elif connect_flags & 0x38:
        raise MalformedPacketError("will QoS or retain set without a will [MQTT-3.1.2-11]")
    username = reader.string() if connect_flags & 0x80 else None
    password = reader.binary() if connect_flags & 0x40 else None
    return Connect(client_id, bool(connect_flags & 0x02), keepalive_s, username, password, will)


def _decode_connack(flags: int, reader: _Reader) -> Connack:
    acknowledge_flags = reader.u8()
    if acknowledge_flags & 0xFE:
        raise MalformedPacketError("CONNACK reserved flags are set")
    return Connack(bool(acknowledge_flags), reader.u8())


def _decode_publish(flags: int, reader: _Reader) -> Publish:
    qos = (flags >> 1) & 0x03
    topic = reader.string()
    packet_id = reader.u16() if qos else None
    return Publish(topic, reader.rest(), qos, packet_id, bool(flags & 0x08), bool(flags & 0x01))


def _decode_subscribe(flags: int, reader: _Reader) -> Subscribe:
    packet_id = reader.u16()
    requests: list[tuple[str, int]] = []
    while not reader.at_end:
        topic_filter, options = reader.string(), reader.u8()
        if options & 0xFC:
            raise MalformedPacketError("SUBSCRIBE options use reserved bits [MQTT-3.8.3-4]")
        requests.append((topic_filter, options))
    return Subscribe(packet_id, tuple(requests))


def _decode_unsubscribe(flags: int, reader: _Reader) -> Unsubscribe:
    packet_id = reader.u16()
    filters: list[str] = []
    while not reader.at_end:
        filters.append(reader.string())
    return Unsubscribe(packet_id, tuple(filters))


_DECODERS: dict[PacketType, Callable[[int, _Reader], Packet]] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBLISH: _decode_publish,
    PacketType.PUBACK: lambda flags, reader: Puback(reader.u16()),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: lambda flags, reader: Suback(reader.u16(), tuple(reader.rest())),
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: lambda flags, reader: Unsuback(reader.u16()),
    PacketType.PINGREQ: lambda flags, reader: Pingreq(),
    PacketType.PINGRESP: lambda flags, reader: Pingresp(),
    PacketType.DISCONNECT: lambda flags, reader: Disconnect(),
}


def decode_body(header: FixedHeader, body: bytes) -> Packet:
    """Decode the ``header.remaining_length`` bytes that follow ``header``."""
    if len(body) != header.remaining_length:
        raise ValueError("body length differs from the header's remaining length")
    reader = _Reader(body)
    try:
        packet = _DECODERS[header.packet_type](header.flags, reader)
    except ValueError as e:  # a field the packet classes refuse, or bad UTF-8
        raise MalformedPacketError(f"{header.packet_type.name}: {e}") from e
    if not reader.at_end:
        raise MalformedPacketError(f"{header.packet_type.name} has trailing bytes")
    return packet


def decode(data: bytes | bytearray) -> tuple[Packet, int] | None:
    """Decode one packet from the start of ``data``: (packet, bytes used), or None if short."""
    header = decode_fixed_header(data)
    if header is None:
        return None
    end = header.size + header.remaining_length
    if len(data) < end:
        return None
    return decode_body(header, bytes(data[header.size : end])), end
