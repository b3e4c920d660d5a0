"""MQTT server over real TLS, driven packet by packet: CONNECT, SUBSCRIBE, PUBLISH, keepalive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from simulator.mqtt import ConnackCode, Limits, MqttServer
from simulator.mqtt.packets import (
    Connack,
    Connect,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from simulator.mqtt.testing import (
    RawClient,
    RecordingHooks,
    ThrowawayTls,
    eventually,
)

PASSWORDS = {"dev1/mod1": b"secret", "dev1/mod2": b"other"}
FAST = Limits(connect_timeout_s=0.5)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks(passwords=PASSWORDS, denied_filters={"denied/#"})


@pytest.fixture
def limits() -> Limits:
    return FAST


OpenClient = Callable[[], Awaitable[RawClient]]


@pytest.fixture
async def clients(host: str, tls: ThrowawayTls, server: MqttServer) -> AsyncIterator[OpenClient]:
    opened: list[RawClient] = []

    async def open_client() -> RawClient:
        opened.append(await RawClient.open(host, server.port, tls.client_context()))
        return opened[-1]

    yield open_client
    for client in opened:
        await client.close()


async def _connected(clients: OpenClient, client_id: str = "dev1/mod1") -> RawClient:
    client = await clients()
    connack = await client.connect(client_id, username="u", password=PASSWORDS[client_id])
    assert connack == Connack(False, ConnackCode.ACCEPTED)
    return client


async def test_accepted_connect_reports_the_client_to_the_hub(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    await _connected(clients)
    assert server.is_connected("dev1/mod1")
    [(info, session_present)] = hooks.connected
    assert (info.client_id, info.username, session_present) == ("dev1/mod1", "u", False)
    assert info.peer.startswith("127.")


@pytest.mark.parametrize(
    ("client_id", "password", "code"),
    [
        ("dev1/mod1", b"wrong", ConnackCode.BAD_CREDENTIALS),
        ("dev9/nobody", b"secret", ConnackCode.NOT_AUTHORIZED),
        ("", b"secret", ConnackCode.ID_REJECTED),
    ],
)
async def test_refused_connect_gets_its_code_and_the_connection_closes(
    server: MqttServer,
    clients: OpenClient,
    hooks: RecordingHooks,
    client_id: str,
    password: bytes,
    code: ConnackCode,
) -> None:
    client = await clients()
    assert await client.connect(client_id, username="u", password=password) == Connack(False, code)
    assert await client.closed_by_server()
    assert hooks.connected == []
    assert server.stats.connects_refused == 1


async def test_mqtt_31_client_is_told_the_protocol_is_unacceptable(clients: OpenClient) -> None:
    client = await clients()
    body = b"\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c"
    await client.send(bytes((0x10, len(body))) + body)
    assert await client.receive() == Connack(False, ConnackCode.BAD_PROTOCOL)
    assert await client.closed_by_server()


async def test_packet_before_connect_closes_the_connection(
    server: MqttServer, clients: OpenClient
) -> None:
    client = await clients()
    await client.send(Pingreq())
    assert await client.closed_by_server()
    assert server.stats.protocol_errors == 1


async def test_second_connect_closes_the_connection(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    await client.send(Connect("dev1/mod1", username="u", password=b"secret"))
    assert await client.closed_by_server()
    await eventually(lambda: hooks.disconnected, what="on_disconnected")


async def test_silent_client_is_closed_after_the_connect_timeout(
    server: MqttServer, clients: OpenClient
) -> None:
    client = await clients()
    assert await client.closed_by_server(timeout_s=3.0)
    assert server.stats.connect_timeouts == 1


async def test_idle_client_is_closed_after_one_and_a_half_keepalives(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await clients()
    await client.connect("dev1/mod1", username="u", password=b"secret", keepalive_s=1)
    started = asyncio.get_running_loop().time()
    assert not await client.closed_by_server(timeout_s=1.2)
    assert await client.closed_by_server(timeout_s=2.0)
    assert 1.4 < asyncio.get_running_loop().time() - started < 2.5
    assert server.stats.keepalive_timeouts == 1
    await eventually(lambda: hooks.disconnected, what="on_disconnected")


async def test_pings_keep_a_connection_alive(server: MqttServer, clients: OpenClient) -> None:
    client = await clients()
    await client.connect("dev1/mod1", username="u", password=b"secret", keepalive_s=1)
    for _ in range(4):
        await asyncio.sleep(0.45)
        await client.send(Pingreq())
        assert await client.receive() == Pingresp()
    assert server.is_connected("dev1/mod1")


async def test_subscribe_grants_at_most_qos1_and_refuses_bad_or_denied_filters(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    requests = (("a/#", 2), ("a/#/b", 1), ("denied/#", 1), ("x", 0), ("", 1))
    await client.send(Subscribe(7, requests))
    assert await client.receive() == Suback(7, (1, 0x80, 0x80, 0, 0x80))
    assert server.subscriptions("dev1/mod1") == {"a/#", "x"}
    assert [f for _, f in hooks.subscribed] == ["a/#", "x"]


async def test_unsubscribe_stops_deliveries(server: MqttServer, clients: OpenClient) -> None:
    client = await _connected(clients)
    await client.send(Subscribe(1, (("a/+", 1),)))
    await client.receive()
    await client.send(Unsubscribe(2, ("a/+", "never/subscribed")))
    assert await client.receive() == Unsuback(2)
    assert server.subscriptions("dev1/mod1") == frozenset()
    assert (await server.deliver("dev1/mod1", "a/b", b"x")).name == "NO_SUBSCRIPTION"


async def test_qos1_puback_is_sent_only_after_the_hub_accepted_the_message(
    clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    hooks.publish_gate.clear()
    await client.send(Publish("devices/dev1/modules/mod1/messages/events/", b"m", 1, 42))
    with pytest.raises(TimeoutError):
        await client.receive(timeout_s=0.3)
    hooks.publish_gate.set()
    assert await client.receive() == Puback(42)
    [published] = hooks.published
    assert (published.topic, published.payload, published.qos) == (
        "devices/dev1/modules/mod1/messages/events/",
        b"m",
        1,
    )


async def test_qos0_publish_reaches_the_hub_without_a_puback(
    clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    await client.send(Publish("t", b"zero"))
    await client.send(Pingreq())
    assert await client.receive() == Pingresp()  # nothing was sent before it
    assert [(p.topic, p.qos) for p in hooks.published] == [("t", 0)]


async def test_publishes_reach_the_hub_in_order(clients: OpenClient, hooks: RecordingHooks) -> None:
    client = await _connected(clients)
    for index in range(20):
        await client.send(
            Publish("t", str(index).encode(), index % 2, index % 2 * (index + 1) or None)
        )
    await eventually(lambda: len(hooks.published) == 20, what="20 messages")
    assert [p.payload for p in hooks.published] == [str(i).encode() for i in range(20)]


async def test_qos2_publish_closes_the_connection(server: MqttServer, clients: OpenClient) -> None:
    client = await _connected(clients)
    await client.send(Publish("t", b"x", 2, 1))
    assert await client.closed_by_server()
    assert server.stats.protocol_errors == 1


async def test_rejected_publish_closes_the_connection_without_a_puback(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    hooks.rejected_topics.add("bad")
    await client.send(Publish("bad", b"x", 1, 3))
    with pytest.raises(EOFError):
        await client.receive()
    assert server.stats.rejected_publishes == 1


async def test_delivery_uses_the_lower_of_requested_and_granted_qos(
    server: MqttServer, clients: OpenClient
) -> None:
    client = await _connected(clients)
    await client.send(Subscribe(1, (("zero/#", 0), ("one/#", 1))))
    await client.receive()
    assert (await server.deliver("dev1/mod1", "zero/a", b"0", qos=1)).name == "DELIVERED"
    assert await client.receive() == Publish("zero/a", b"0")
    await server.deliver("dev1/mod1", "one/a", b"1", qos=0)
    assert await client.receive() == Publish("one/a", b"1")
    await server.deliver("dev1/mod1", "one/b", b"2", qos=1)
    delivered = await client.receive()
    assert isinstance(delivered, Publish)
    assert (delivered.qos, delivered.dup, delivered.payload) == (1, False, b"2")


async def test_payload_at_the_edgehub_limit_is_accepted(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    topic = "devices/dev1/modules/mod1/messages/events/" + "%24.on=out&k=" + "v" * 2_000
    await client.send(Publish(topic, bytes(262_144), 1, 1))
    assert await client.receive() == Puback(1)
    assert len(hooks.published[0].payload) == 262_144


async def test_payload_over_the_edgehub_limit_closes_the_connection(
    server: MqttServer, clients: OpenClient, hooks: RecordingHooks
) -> None:
    client = await _connected(clients)
    await client.send(Publish("t", bytes(262_145), 1, 1))
    assert await client.closed_by_server()
    assert hooks.published == []
    assert server.stats.oversized_packets == 1


async def test_oversized_packet_is_refused_from_its_header_before_the_body(
    server: MqttServer, clients: OpenClient
) -> None:
    client = await _connected(clients)
    await client.send(b"\x32\xff\xff\x7f")  # claims 2 MB and sends none of it
    assert await client.closed_by_server(timeout_s=2.0)
    assert server.stats.oversized_packets == 1
