"""Property tests of the codec: every packet round-trips; arbitrary bytes never crash it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.mqtt.codec import decode, decode_fixed_header, encode
from simulator.mqtt.errors import MalformedPacketError
from simulator.mqtt.packets import (
    SUBACK_FAILURE,
    Connack,
    ConnackCode,
    Connect,
    Disconnect,
    Packet,
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

# MQTT strings: any Unicode except U+0000 and surrogates (not encodable as UTF-8).
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
short_bytes = st.binary(max_size=64)
packet_ids = st.integers(1, 0xFFFF)
qos_levels = st.integers(0, 2)
topic_names = texts.filter(lambda t: t and "+" not in t and "#" not in t)

wills = st.builds(Will, topic_names, short_bytes, qos_levels, st.booleans())


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    username = draw(st.none() | texts)
    password = None if username is None else draw(st.none() | short_bytes)
    return Connect(
        draw(texts),
        draw(st.booleans()),
        draw(st.integers(0, 0xFFFF)),
        username,
        password,
        draw(st.none() | wills),
    )


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(qos_levels)
    packet_id = draw(packet_ids) if qos else None
    dup = draw(st.booleans()) if qos else False
    return Publish(
        draw(topic_names), draw(st.binary(max_size=512)), qos, packet_id, dup, draw(st.booleans())
    )


@st.composite
def connacks(draw: st.DrawFn) -> Connack:
    code = draw(st.sampled_from(ConnackCode))
    return Connack(code is ConnackCode.ACCEPTED and draw(st.booleans()), code)


packets: st.SearchStrategy[Packet] = st.one_of(
    connects(),
    connacks(),
    publishes(),
    st.builds(Puback, packet_ids),
    st.builds(
        Subscribe,
        packet_ids,
        st.lists(st.tuples(texts, qos_levels), min_size=1, max_size=5).map(tuple),
    ),
    st.builds(
        Suback,
        packet_ids,
        st.lists(st.sampled_from((0, 1, 2, SUBACK_FAILURE)), min_size=1, max_size=5).map(tuple),
    ),
    st.builds(Unsubscribe, packet_ids, st.lists(texts, min_size=1, max_size=5).map(tuple)),
    st.builds(Unsuback, packet_ids),
    st.just(Pingreq()),
    st.just(Pingresp()),
    st.just(Disconnect()),
)


@given(packets)
def test_every_packet_decodes_to_itself(packet: Packet) -> None:
    wire = encode(packet)
    assert decode(wire) == (packet, len(wire))


@given(packets, st.binary(max_size=16))
def test_decoding_takes_exactly_one_packet_from_a_stream(packet: Packet, after: bytes) -> None:
    wire = encode(packet)
    assert decode(wire + after) == (packet, len(wire))


@given(packets, st.data())
def test_every_prefix_of_a_packet_asks_for_more_bytes(packet: Packet, data: st.DataObject) -> None:
    wire = encode(packet)
    cut = data.draw(st.integers(0, len(wire) - 1))
    assert decode(wire[:cut]) is None


def _decode_or_refuse(data: bytes) -> None:
    """The decoder's whole contract on untrusted input: a packet, None, or MalformedPacketError,
    and anything it accepts must be canonical (re-encodes to the same bytes)."""
    try:
        result = decode(data)
    except MalformedPacketError:
        return
    if result is not None:
        packet, used = result
        assert encode(packet) == data[:used]


@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=256))
def test_random_bytes_only_decode_or_are_refused(data: bytes) -> None:
    _decode_or_refuse(data)


# Random bytes rarely get past the first byte; mutating real packets reaches the field parsers.
@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(packets, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_mutated_packets_only_decode_or_are_refused(
    packet: Packet, flips: list[tuple[int, int]]
) -> None:
    wire = bytearray(encode(packet))
    for position, value in flips:
        wire[position % len(wire)] = value
    _decode_or_refuse(bytes(wire))


@given(st.binary(min_size=1, max_size=8))
def test_fixed_header_never_claims_more_than_four_length_bytes(data: bytes) -> None:
    try:
        header = decode_fixed_header(data)
    except MalformedPacketError:
        return
    if header is not None:
        assert 2 <= header.size <= 5
        assert header.size <= len(data)
