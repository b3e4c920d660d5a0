"""paho-mqtt 1.6.1 (the client inside azure-iot-device) against the server over real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from simulator.mqtt import DeliveryResult, Limits, MqttServer
from simulator.mqtt.testing import (
    PahoPeer,
    RecordingHooks,
    ThrowawayTls,
    eventually,
)

PASSWORDS = {"dev1/mod1": b"secret", "dev1/mod2": b"other"}
INPUTS = "devices/dev1/modules/mod1/inputs/#"
INPUT_TOPIC = "devices/dev1/modules/mod1/inputs/in1/%24.cdid=dev1&%24.cmid=camera"
MakePeer = Callable[..., PahoPeer]


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks(passwords=PASSWORDS, denied_filters={"denied/#"})


@pytest.fixture
def limits() -> Limits:
    # A window of one means every QoS 1 delivery after the first needs paho's PUBACK.
    return Limits(max_inflight=1)


@pytest.fixture
async def peers(host: str, tls: ThrowawayTls, server: MqttServer) -> AsyncIterator[MakePeer]:
    made: list[PahoPeer] = []

    def make(client_id: str = "dev1/mod1", password: str = "secret", **options: Any) -> PahoPeer:
        made.append(
            PahoPeer(
                client_id,
                host,
                server.port,
                tls.client_context(),
                username=f"hub.local/{client_id}/?api-version=2019-10-01",
                password=password,
                **options,
            )
        )
        return made[-1]

    yield make
    for peer in made:
        await peer.stop()


async def test_paho_connects_without_a_session_the_first_time(peers: MakePeer) -> None:
    assert await peers().start() == (0, False)


@pytest.mark.parametrize(
    ("client_id", "password", "paho_rc"),
    [("dev1/mod1", "wrong", 4), ("dev9/unknown", "secret", 5)],
)
async def test_paho_sees_the_refusal_code(
    peers: MakePeer, server: MqttServer, client_id: str, password: str, paho_rc: int
) -> None:
    assert await peers(client_id, password).start() == (paho_rc, False)
    assert server.stats.auth_failures == 1
    assert not server.is_connected(client_id)


async def test_paho_receives_qos0_and_qos1_and_acknowledges_each(
    peers: MakePeer, server: MqttServer
) -> None:
    peer = peers()
    await peer.start()
    assert await peer.subscribe(INPUTS, qos=1) == (1,)
    for index in range(5):
        await server.deliver("dev1/mod1", INPUT_TOPIC, f"q1-{index}".encode(), qos=1)
        await server.deliver("dev1/mod1", INPUT_TOPIC, f"q0-{index}".encode(), qos=0)
    await eventually(lambda: len(peer.messages) == 10, what="10 messages at paho")
    assert [(payload, qos) for _, payload, qos, _ in peer.messages] == [
        (f"q{qos}-{index}".encode(), qos) for index in range(5) for qos in (1, 0)
    ]


async def test_paho_publish_completes_only_after_the_hub_accepted_it(
    peers: MakePeer, hooks: RecordingHooks
) -> None:
    peer = peers()
    await peer.start()
    hooks.publish_gate.clear()
    mid = peer.publish("devices/dev1/modules/mod1/messages/events/%24.on=out1", b"{}", qos=1)
    await asyncio.sleep(0.3)
    assert mid not in peer.completed
    hooks.publish_gate.set()
    await eventually(lambda: mid in peer.completed, what="PUBACK at paho")
    peer.publish("devices/dev1/modules/mod1/messages/events/", b"zero", qos=0)
    await eventually(lambda: len(hooks.published) == 2, what="both messages at the hub")
    assert [(p.payload, p.qos) for p in hooks.published] == [(b"{}", 1), (b"zero", 0)]


async def test_persistent_session_survives_a_paho_reconnect(
    peers: MakePeer, server: MqttServer
) -> None:
    first = peers()
    await first.start()
    await first.subscribe(INPUTS)
    await first.stop()
    await eventually(lambda: not server.is_connected("dev1/mod1"), what="first gone")
    assert await server.deliver("dev1/mod1", INPUT_TOPIC, b"queued") is DeliveryResult.QUEUED

    second = peers()  # a new paho client that never subscribes, as the SDK after a reconnect
    assert await second.start() == (0, True)
    await eventually(lambda: second.messages, what="queued message at paho")
    assert second.messages == [(INPUT_TOPIC, b"queued", 1, False)]


async def test_clean_paho_session_is_gone_after_disconnect(
    peers: MakePeer, server: MqttServer
) -> None:
    peer = peers(clean_session=True)
    await peer.start()
    await peer.subscribe(INPUTS)
    await peer.stop()
    await eventually(lambda: not server.is_connected("dev1/mod1"), what="peer gone")
    assert await server.deliver("dev1/mod1", INPUT_TOPIC, b"x") is DeliveryResult.NO_SESSION


async def test_second_paho_client_with_the_same_id_takes_over(
    peers: MakePeer, server: MqttServer
) -> None:
    first, second = peers(), peers()
    await first.start()
    await first.subscribe(INPUTS)
    assert await second.start() == (0, True)
    await eventually(lambda: first.disconnects, what="first client dropped")
    assert first.disconnects[0] != 0  # an unexpected disconnect from paho's point of view
    await server.deliver("dev1/mod1", INPUT_TOPIC, b"new owner")
    await eventually(lambda: second.messages, what="delivery to the new connection")
    assert first.messages == []


async def test_denied_filter_gets_suback_failure_at_paho(peers: MakePeer) -> None:
    peer = peers()
    await peer.start()
    assert await peer.subscribe("denied/#") == (128,)


async def test_each_connection_has_its_own_id_for_request_scoping(
    peers: MakePeer, hooks: RecordingHooks
) -> None:
    one, two = peers(), peers("dev1/mod2", "other")
    await one.start()
    await two.start()
    one.publish("$iothub/twin/GET/?$rid=1", b" ")
    two.publish("$iothub/twin/GET/?$rid=1", b" ")
    await eventually(lambda: len(hooks.published) == 2, what="both twin requests")
    await one.stop()
    again = peers()
    await again.start()
    again.publish("$iothub/twin/GET/?$rid=1", b" ")
    await eventually(lambda: len(hooks.published) == 3, what="third twin request")
    ids = [(p.client.client_id, p.client.connection_id) for p in hooks.published]
    assert len({connection_id for _, connection_id in ids}) == 3
