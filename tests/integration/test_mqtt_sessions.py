"""Sessions over real TLS: persistence, redelivery, takeover, bounded queues, backpressure."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator.mqtt import DeliveryResult, Limits, MqttServer
from simulator.mqtt.packets import Pingreq, Pingresp, Puback, Publish, Subscribe
from simulator.mqtt.testing import (
    RawClient,
    RecordingHooks,
    ThrowawayTls,
    eventually,
)

CLIENT = "dev1/mod1"
INPUTS = "devices/dev1/modules/mod1/inputs/#"
INPUT_TOPIC = "devices/dev1/modules/mod1/inputs/in1/%24.cdid=dev1&%24.cmid=camera"


class Connector:
    """Opens clients for CLIENT and records each CONNACK's session-present flag."""

    def __init__(self, host: str, port: int, tls: ThrowawayTls) -> None:
        self._address = (host, port)
        self._tls = tls
        self.opened: list[RawClient] = []
        self.session_present: list[bool] = []

    async def __call__(self, clean_session: bool = False) -> RawClient:
        client = await RawClient.open(*self._address, self._tls.client_context())
        self.opened.append(client)
        connack = await client.connect(CLIENT, clean_session=clean_session)
        assert connack.return_code == 0
        self.session_present.append(connack.session_present)
        return client


@pytest.fixture
async def connect(host: str, tls: ThrowawayTls, server: MqttServer) -> AsyncIterator[Connector]:
    connector = Connector(host, server.port, tls)
    yield connector
    for client in connector.opened:
        await client.close()


async def _subscribe(client: RawClient, topic_filter: str = INPUTS) -> None:
    await client.send(Subscribe(1, ((topic_filter, 1),)))
    await client.receive()


async def _leave(client: RawClient, server: MqttServer) -> None:
    client.vanish()
    await eventually(lambda: not server.is_connected(CLIENT), what="server saw the client go")


async def _nothing_more(client: RawClient) -> None:
    await client.send(Pingreq())
    assert await client.receive() == Pingresp()


async def test_persistent_session_keeps_subscriptions_and_queues_qos1_while_away(
    server: MqttServer, connect: Connector
) -> None:
    first = await connect()
    await _subscribe(first)
    await _leave(first, server)
    assert await server.deliver(CLIENT, INPUT_TOPIC, b"while away") is DeliveryResult.QUEUED
    assert await server.deliver(CLIENT, INPUT_TOPIC, b"qos0", qos=0) is DeliveryResult.DROPPED

    second = await connect()  # does not subscribe again, exactly like the IoT SDK
    assert connect.session_present == [False, True]
    delivered = await second.receive()
    assert isinstance(delivered, Publish)
    assert (delivered.topic, delivered.payload, delivered.qos) == (INPUT_TOPIC, b"while away", 1)


async def test_clean_session_discards_what_was_kept(server: MqttServer, connect: Connector) -> None:
    first = await connect()
    await _subscribe(first)
    await _leave(first, server)
    await server.deliver(CLIENT, INPUT_TOPIC, b"kept")

    second = await connect(clean_session=True)
    assert connect.session_present == [False, False]
    assert server.subscriptions(CLIENT) == frozenset()
    await _nothing_more(second)
    await _leave(second, server)
    assert await server.deliver(CLIENT, INPUT_TOPIC, b"x") is DeliveryResult.NO_SESSION


async def test_unacknowledged_qos1_is_resent_with_dup_and_same_id_on_reconnect(
    server: MqttServer, connect: Connector
) -> None:
    first = await connect()
    await _subscribe(first)
    await server.deliver(CLIENT, INPUT_TOPIC, b"ack me")
    original = await first.receive()
    assert isinstance(original, Publish)
    assert not original.dup
    await _leave(first, server)

    second = await connect()
    resent = await second.receive()
    assert resent == Publish(INPUT_TOPIC, b"ack me", 1, original.packet_id, dup=True)
    assert original.packet_id is not None
    await second.send(Puback(original.packet_id))
    await _nothing_more(second)
    await _leave(second, server)

    third = await connect()
    await _nothing_more(third)  # acknowledged messages are never sent again


@pytest.mark.parametrize("limits", [Limits(max_inflight=2)])
async def test_qos1_window_waits_for_pubacks(server: MqttServer, connect: Connector) -> None:
    client = await connect()
    await _subscribe(client)
    for index in range(3):
        await server.deliver(CLIENT, INPUT_TOPIC, str(index).encode())
    first, second = await client.receive(), await client.receive()
    await _nothing_more(client)
    assert isinstance(first, Publish)
    assert first.packet_id is not None
    await client.send(Puback(first.packet_id))
    third = await client.receive()
    assert isinstance(third, Publish)
    assert [first.payload, getattr(second, "payload", None), third.payload] == [b"0", b"1", b"2"]


@pytest.mark.parametrize("limits", [Limits(max_queued_messages=3)])
async def test_offline_queue_keeps_the_newest_and_counts_the_dropped(
    server: MqttServer, connect: Connector
) -> None:
    first = await connect()
    await _subscribe(first)
    await _leave(first, server)
    for index in range(5):
        assert await server.deliver(CLIENT, INPUT_TOPIC, str(index).encode()) is (
            DeliveryResult.QUEUED
        )
    assert server.stats.dropped_queued == 2

    second = await connect()
    received = [await second.receive() for _ in range(3)]
    assert [getattr(p, "payload", None) for p in received] == [b"2", b"3", b"4"]


async def test_deliver_reports_why_nothing_was_sent(server: MqttServer, connect: Connector) -> None:
    assert await server.deliver("nobody", "t", b"x") is DeliveryResult.NO_SESSION
    client = await connect()
    assert await server.deliver(CLIENT, "t", b"x") is DeliveryResult.NO_SUBSCRIPTION
    await _subscribe(client, "t")
    assert await server.deliver(CLIENT, "t", b"x") is DeliveryResult.DELIVERED
    with pytest.raises(ValueError, match="topic"):
        await server.deliver(CLIENT, "t/#", b"x")


async def test_newer_connection_takes_over_and_the_hub_hears_the_old_one_leave_first(
    server: MqttServer, connect: Connector, hooks: RecordingHooks
) -> None:
    first = await connect()
    await _subscribe(first)
    second = await connect()
    assert await first.closed_by_server()
    assert connect.session_present == [False, True]
    old, new = (info.connection_id for info, _ in hooks.connected)
    assert old != new
    assert hooks.events == [f"connected:{old}", f"disconnected:{old}", f"connected:{new}"]
    assert server.stats.takeovers == 1
    await server.deliver(CLIENT, INPUT_TOPIC, b"to the new one")
    assert getattr(await second.receive(), "payload", None) == b"to the new one"


async def test_server_side_disconnect_keeps_the_session(
    server: MqttServer, connect: Connector, hooks: RecordingHooks
) -> None:
    client = await connect()
    await _subscribe(client)
    await server.disconnect(CLIENT)
    assert await client.closed_by_server()
    assert not server.is_connected(CLIENT)
    assert [info.client_id for info in hooks.disconnected] == [CLIENT]
    assert server.subscriptions(CLIENT) == {INPUTS}


@pytest.mark.parametrize("limits", [Limits(write_timeout_s=0.5)])
async def test_client_that_stops_reading_is_dropped_without_blocking_deliver(
    server: MqttServer, connect: Connector
) -> None:
    client = await connect()
    await _subscribe(client)
    # The client reads nothing more; socket buffers fill, then the server's writes stall.
    for _ in range(200):
        result = await server.deliver(CLIENT, INPUT_TOPIC, bytes(200_000), qos=0)
        assert result in (DeliveryResult.DELIVERED, DeliveryResult.DROPPED)
    await eventually(lambda: not server.is_connected(CLIENT), what="slow reader dropped")
    assert server.stats.slow_readers == 1
