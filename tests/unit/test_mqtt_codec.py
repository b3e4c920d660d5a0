"""MQTT 3.1.1 codec: byte-exact examples from the specification and the malformed cases."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest

from simulator.mqtt.codec import (
    decode,
    decode_body,
    decode_fixed_header,
    encode,
    encode_remaining_length,
)
from simulator.mqtt.errors import MalformedPacketError, UnsupportedProtocolError
from simulator.mqtt.packets import (
    Connack,
    ConnackCode,
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


@pytest.mark.parametrize(
    ("packet", "wire"),
    [
        (Pingreq(), b"\xc0\x00"),
        (Pingresp(), b"\xd0\x00"),
        (Disconnect(), b"\xe0\x00"),
        (Connack(True, ConnackCode.ACCEPTED), b"\x20\x02\x01\x00"),
        (Connack(False, ConnackCode.NOT_AUTHORIZED), b"\x20\x02\x00\x05"),
        (Puback(0x1234), b"\x40\x02\x12\x34"),
        (Unsuback(7), b"\xb0\x02\x00\x07"),
        (Publish("a/b", b"hi"), b"\x30\x07\x00\x03a/bhi"),
        (Publish("a/b", b"hi", 1, 10, dup=True), b"\x3a\x09\x00\x03a/b\x00\x0ahi"),
        (Subscribe(1, (("a/#", 1),)), b"\x82\x08\x00\x01\x00\x03a/#\x01"),
        (Suback(1, (1, 0x80)), b"\x90\x04\x00\x01\x01\x80"),
        (Unsubscribe(2, ("x",)), b"\xa2\x05\x00\x02\x00\x01x"),
        (
            Connect("c", clean_session=False, keepalive_s=60, username="u", password=b"p"),
            b"\x10\x13\x00\x04MQTT\x04\xc0\x00\x3c\x00\x01c\x00\x01u\x00\x01p",
        ),
    ],
)
def test_packet_encodes_to_the_spec_bytes_and_back(packet: Packet, wire: bytes) -> None:
    assert encode(packet) == wire
    assert decode(wire) == (packet, len(wire))


def test_connect_with_a_will_round_trips() -> None:
    packet = Connect("id", will=Will("w/t", b"bye", qos=1, retain=True), username="u")
    assert decode(encode(packet)) == (packet, len(encode(packet)))


def test_paho_connect_bytes_decode_to_the_same_fields() -> None:
    client = paho.Client("dev1/mod1", clean_session=False, protocol=paho.MQTTv311)
    client.username_pw_set("hub/dev1/mod1/?api-version=2019-10-01", "SharedAccessSignature x")
    client._send_connect(60)  # private in 1.6.1: queues the packet, no socket needed
    wire = bytes(client._out_packet[0]["packet"])
    packet, used = decode(wire) or pytest.fail("paho CONNECT did not decode")
    assert used == len(wire)
    assert packet == Connect(
        "dev1/mod1",
        clean_session=False,
        keepalive_s=60,
        username="hub/dev1/mod1/?api-version=2019-10-01",
        password=b"SharedAccessSignature x",
    )


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_uses_the_spec_encoding(length: int, encoded: bytes) -> None:
    assert encode_remaining_length(length) == encoded
    header = decode_fixed_header(b"\x30" + encoded)
    assert header is not None
    assert (header.remaining_length, header.size) == (length, 1 + len(encoded))


def test_fixed_header_is_incomplete_until_its_last_length_byte() -> None:
    assert decode_fixed_header(b"") is None
    assert decode_fixed_header(b"\x30") is None
    assert decode_fixed_header(b"\x30\x80\x80") is None


def test_oversized_length_is_known_from_the_header_alone() -> None:
    header = decode_fixed_header(b"\x30\xff\xff\x7f")
    assert header is not None
    assert header.packet_type is PacketType.PUBLISH
    assert header.remaining_length == 2_097_151


def test_truncated_packet_asks_for_more_bytes() -> None:
    wire = encode(Publish("t", b"payload", 1, 5))
    for cut in range(len(wire)):
        assert decode(wire[:cut]) is None


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"\x00\x00", id="reserved type 0"),
        pytest.param(b"\xf0\x00", id="reserved type 15"),
        pytest.param(b"\x50\x02\x00\x01", id="PUBREC unsupported"),
        pytest.param(b"\x62\x02\x00\x01", id="PUBREL unsupported"),
        pytest.param(b"\x36\x05\x00\x01t\x00\x01", id="PUBLISH QoS 3"),
        pytest.param(b"\x80\x06\x00\x01\x00\x01a\x00", id="SUBSCRIBE without flags 0b0010"),
        pytest.param(b"\xc1\x00", id="PINGREQ with flags"),
        pytest.param(b"\xc0\x01\x00", id="PINGREQ with a body"),
        pytest.param(b"\x30\xff\xff\xff\xff\x01", id="remaining length of five bytes"),
        pytest.param(b"\x30\x80\x00", id="remaining length not minimal"),
        pytest.param(b"\x40\x03\x00\x01\x00", id="PUBACK with a trailing byte"),
        pytest.param(b"\x40\x02\x00\x00", id="PUBACK packet id 0"),
        pytest.param(b"\x40\x01\x00", id="PUBACK cut inside its id"),
        pytest.param(b"\x30\x03\x00\x01+", id="PUBLISH to a wildcard topic"),
        pytest.param(b"\x30\x02\x00\x00", id="PUBLISH to an empty topic"),
        pytest.param(b"\x38\x03\x00\x01t", id="QoS 0 PUBLISH marked DUP"),
        pytest.param(b"\x32\x05\x00\x01t\x00\x00", id="QoS 1 PUBLISH packet id 0"),
        pytest.param(b"\x30\x03\x00\x01\xff", id="topic is not UTF-8"),
        pytest.param(b"\x30\x03\x00\x01\x00", id="topic holds U+0000"),
        pytest.param(b"\x30\x05\x00\x03\xed\xa0\x80", id="topic holds a UTF-16 surrogate"),
        pytest.param(b"\x82\x02\x00\x01", id="SUBSCRIBE without filters"),
        pytest.param(b"\x82\x06\x00\x01\x00\x01a\x04", id="SUBSCRIBE reserved option bits"),
        pytest.param(b"\xa2\x02\x00\x01", id="UNSUBSCRIBE without filters"),
        pytest.param(b"\x20\x02\x02\x00", id="CONNACK reserved flag"),
        pytest.param(b"\x20\x02\x01\x05", id="refused CONNACK claiming a session"),
        pytest.param(b"\x20\x02\x00\x06", id="CONNACK return code 6"),
        pytest.param(b"\x90\x03\x00\x01\x03", id="SUBACK return code 3"),
    ],
)
def test_malformed_packet_is_refused(wire: bytes) -> None:
    with pytest.raises(MalformedPacketError):
        decode(wire)


def _connect_wire(flags: int, tail: bytes, level: int = 4, name: bytes = b"MQTT") -> bytes:
    body = len(name).to_bytes(2, "big") + name + bytes((level, flags)) + b"\x00\x3c" + tail
    return b"\x10" + encode_remaining_length(len(body)) + body


@pytest.mark.parametrize(
    ("flags", "tail"),
    [
        pytest.param(0x03, b"\x00\x01c", id="reserved flag"),
        pytest.param(0x0A, b"\x00\x01c", id="will QoS without a will"),
        pytest.param(0x22, b"\x00\x01c", id="will retain without a will"),
        pytest.param(0x1E, b"\x00\x01c\x00\x01t\x00\x00", id="will QoS 3"),
        pytest.param(0x42, b"\x00\x01c\x00\x01p", id="password without username"),
        pytest.param(0x82, b"\x00\x01c", id="username flag without a username"),
    ],
)
def test_malformed_connect_is_refused(flags: int, tail: bytes) -> None:
    with pytest.raises(MalformedPacketError):
        decode(_connect_wire(flags, tail))


@pytest.mark.parametrize(("name", "level"), [(b"MQIsdp", 3), (b"MQTT", 5), (b"MQTT", 3)])
def test_connect_for_another_protocol_is_named_as_such(name: bytes, level: int) -> None:
    with pytest.raises(UnsupportedProtocolError) as raised:
        decode(_connect_wire(0x02, b"\x00\x01c", level, name))
    assert (raised.value.protocol_name, raised.value.protocol_level) == (name.decode(), level)


def test_decode_body_refuses_a_body_of_the_wrong_length() -> None:
    header = decode_fixed_header(b"\x40\x02")
    assert header is not None
    with pytest.raises(ValueError, match="remaining length"):
        decode_body(header, b"\x00")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Publish("t", qos=1),
        lambda: Publish("t", packet_id=1),
        lambda: Publish("a/+"),
        lambda: Puback(0x10000),
        lambda: Subscribe(1, ()),
        lambda: Connect("c", password=b"p"),
        lambda: Connect("c", keepalive_s=-1),
        lambda: Connack(True, ConnackCode.BAD_CREDENTIALS),
    ],
)
def test_packet_with_invalid_fields_cannot_be_built(make: object) -> None:
    assert callable(make)
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        make()
