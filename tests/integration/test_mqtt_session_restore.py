"""Persistent sessions survive a server restart when the server has a session store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulator.mqtt import DeliveryResult, MqttServer
from simulator.mqtt.packets import Puback, Publish, Subscribe
from simulator.mqtt.session_store import SessionStore
from simulator.mqtt.testing import RawClient, RecordingHooks, ThrowawayTls, eventually

CLIENT = "dev1/mod1"
INPUTS = "devices/dev1/modules/mod1/inputs/#"
TOPIC = "devices/dev1/modules/mod1/inputs/in1/%24.cdid=dev1&%24.cmid=camera"


class Restartable:
    """One server at a time on one address, each with the store re-opened from disk."""

    def __init__(self, host: str, tls: ThrowawayTls, db: Path) -> None:
        self.host, self.tls, self.db = host, tls, db
        self.server: MqttServer | None = None
        self.store: SessionStore | None = None
        self.port = 0
        self.clients: list[RawClient] = []

    async def start(self) -> MqttServer:
        self.store = SessionStore.open(self.db)
        self.server = MqttServer(RecordingHooks(), self.tls.server_context, store=self.store)
        await self.server.start(self.host, self.port)
        self.port = self.server.port
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.store is not None:
            self.store.close()

    async def connect(self, clean_session: bool = False) -> tuple[RawClient, bool]:
        client = await RawClient.open(self.host, self.port, self.tls.client_context())
        self.clients.append(client)
        connack = await client.connect(CLIENT, clean_session=clean_session)
        assert connack.return_code == 0
        return client, connack.session_present


@pytest.fixture
async def servers(host: str, tls: ThrowawayTls, tmp_path: Path) -> AsyncIterator[Restartable]:
    holder = Restartable(host, tls, tmp_path / "sessions.sqlite")
    yield holder
    for client in holder.clients:
        await client.close()
    await holder.stop()


async def test_subscriptions_and_queued_qos1_messages_survive_a_restart(
    servers: Restartable,
) -> None:
    server = await servers.start()
    client, _ = await servers.connect()
    await client.send(Subscribe(1, ((INPUTS, 1),)))
    await client.receive()
    client.vanish()
    await eventually(lambda: not server.is_connected(CLIENT), what="server saw the client go")
    assert await server.deliver(CLIENT, TOPIC, b"kept while away") is DeliveryResult.QUEUED
    await servers.stop()

    server = await servers.start()
    assert server.subscriptions(CLIENT) == {INPUTS}
    again, present = await servers.connect()  # no SUBSCRIBE, like the IoT SDK
    assert present
    queued = await again.receive()
    assert isinstance(queued, Publish) and queued.payload == b"kept while away"
    assert queued.packet_id is not None
    await again.send(Puback(queued.packet_id))
    assert await server.deliver(CLIENT, TOPIC, b"after") is DeliveryResult.DELIVERED
    assert getattr(await again.receive(), "payload", None) == b"after"


async def test_an_unacknowledged_delivery_is_sent_again_after_a_restart(
    servers: Restartable,
) -> None:
    server = await servers.start()
    client, _ = await servers.connect()
    await client.send(Subscribe(1, ((INPUTS, 1),)))
    await client.receive()
    await server.deliver(CLIENT, TOPIC, b"not acknowledged")
    assert isinstance(await client.receive(), Publish)  # and never PUBACKed
    await servers.stop()

    await servers.start()
    again, present = await servers.connect()
    assert present
    assert getattr(await again.receive(), "payload", None) == b"not acknowledged"


async def test_acknowledged_and_clean_sessions_leave_nothing_behind(servers: Restartable) -> None:
    server = await servers.start()
    client, _ = await servers.connect()
    await client.send(Subscribe(1, ((INPUTS, 1),)))
    await client.receive()
    await server.deliver(CLIENT, TOPIC, b"acknowledged")
    delivered = await client.receive()
    assert isinstance(delivered, Publish) and delivered.packet_id is not None
    await client.send(Puback(delivered.packet_id))
    await servers.stop()

    server = await servers.start()
    _, present = await servers.connect(clean_session=True)
    assert not present
    assert server.subscriptions(CLIENT) == frozenset()
    await servers.stop()

    server = await servers.start()
    assert await server.deliver(CLIENT, TOPIC, b"x") is DeliveryResult.NO_SESSION
