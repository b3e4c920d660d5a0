"""Bad clients close only their own connection: a paho client keeps working beside each one."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from simulator.mqtt import Limits, MqttServer
from simulator.mqtt.codec import encode
from simulator.mqtt.packets import Connect, Publish
from simulator.mqtt.testing import (
    PahoPeer,
    RawClient,
    RecordingHooks,
    ThrowawayTls,
    eventually,
)

GOOD, BAD = "dev1/good", "dev1/bad"
PASSWORDS = {GOOD: b"good", BAD: b"bad"}
GOOD_INPUTS = "devices/dev1/modules/good/inputs/#"


def _paho(client_id: str, host: str, server: MqttServer, tls: ThrowawayTls) -> PahoPeer:
    password = PASSWORDS[client_id].decode()
    return PahoPeer(
        client_id, host, server.port, tls.client_context(), username="u", password=password
    )


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks(passwords=PASSWORDS)


@pytest.fixture
async def good(host: str, tls: ThrowawayTls, server: MqttServer) -> AsyncIterator[PahoPeer]:
    peer = _paho(GOOD, host, server, tls)
    assert await peer.start() == (0, False)
    await peer.subscribe(GOOD_INPUTS)
    yield peer
    await peer.stop()


@pytest.fixture
async def raw(host: str, tls: ThrowawayTls, server: MqttServer) -> AsyncIterator[RawClient]:
    client = await RawClient.open(host, server.port, tls.client_context())
    yield client
    await client.close()


async def _round_trip(peer: PahoPeer, server: MqttServer, hooks: RecordingHooks) -> float:
    """One message each way through the good client; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started, seen_in, seen_out = loop.time(), len(hooks.published), len(peer.messages)
    mid = peer.publish("devices/dev1/modules/good/messages/events/", b"ping", qos=1)
    await server.deliver(GOOD, "devices/dev1/modules/good/inputs/in1/", b"pong")
    await eventually(lambda: mid in peer.completed, what="PUBACK at the good client")
    await eventually(lambda: len(peer.messages) > seen_out, what="delivery to the good client")
    assert len(hooks.published) > seen_in
    return loop.time() - started


@pytest.mark.parametrize(
    ("after_connect", "wire"),
    [
        pytest.param(False, b"\x10\x0a\x00\x04MQTT\x04\xff garbage", id="CONNECT reserved flag"),
        pytest.param(False, b"\x10\xff\xff\xff\xff\x7f", id="remaining length of 5 bytes"),
        pytest.param(False, b"\xf0\x00", id="reserved packet type"),
        pytest.param(True, b"\x30\x80\x00", id="remaining length not minimal"),
        pytest.param(True, b"\x30\x04\x00\x05ab", id="topic longer than the packet"),
        pytest.param(True, b"\x82\x04\x00\x01\x00\x00", id="SUBSCRIBE cut in a filter"),
    ],
)
async def test_malformed_bytes_close_only_that_connection(
    good: PahoPeer,
    raw: RawClient,
    server: MqttServer,
    hooks: RecordingHooks,
    after_connect: bool,
    wire: bytes,
) -> None:
    if after_connect:
        await raw.connect(BAD, username="u", password=b"bad")
    await raw.send(wire)
    assert await raw.closed_by_server()
    assert server.stats.malformed_packets == 1
    await _round_trip(good, server, hooks)
    assert good.disconnects == []


async def test_random_bytes_after_connect_never_disturb_the_server(
    good: PahoPeer, host: str, tls: ThrowawayTls, server: MqttServer, hooks: RecordingHooks
) -> None:
    noise = random.Random(1234)
    for _ in range(40):
        client = await RawClient.open(host, server.port, tls.client_context())
        try:
            await client.connect(BAD, username="u", password=b"bad")
            await client.send(noise.randbytes(noise.randrange(1, 300)))
            await client.closed_by_server(timeout_s=0.05)
        finally:
            await client.close()
    await _round_trip(good, server, hooks)
    assert server.stats.internal_errors == 0


async def test_plain_bytes_on_the_tls_port_close_only_that_connection(
    good: PahoPeer, host: str, server: MqttServer, hooks: RecordingHooks
) -> None:
    reader, writer = await asyncio.open_connection(host, server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    await _round_trip(good, server, hooks)


@pytest.mark.parametrize("limits", [Limits(connect_timeout_s=0.3)])
async def test_connection_that_never_starts_tls_is_closed(host: str, server: MqttServer) -> None:
    reader, writer = await asyncio.open_connection(host, server.port)
    async with asyncio.timeout(3):
        assert await reader.read() == b""
    writer.close()


async def test_client_vanishing_mid_publish_is_forgotten_quietly(
    good: PahoPeer, raw: RawClient, server: MqttServer, hooks: RecordingHooks
) -> None:
    await raw.connect(BAD, username="u", password=b"bad")
    wire = encode(Publish("devices/dev1/modules/bad/messages/events/", bytes(100_000), 1, 1))
    await raw.send(wire[: len(wire) // 2])
    raw.vanish()
    await eventually(lambda: [i.client_id for i in hooks.disconnected] == [BAD], what="bad gone")
    assert all(p.client.client_id == GOOD for p in hooks.published)
    await _round_trip(good, server, hooks)


async def test_client_vanishing_while_the_hub_handles_its_publish_leaves_once(
    raw: RawClient, server: MqttServer, hooks: RecordingHooks
) -> None:
    await raw.connect(BAD, username="u", password=b"bad")
    hooks.publish_gate.clear()
    await raw.send(Publish("devices/dev1/modules/bad/messages/events/", b"x", 1, 1))
    await eventually(lambda: server.stats.messages_in == 1, what="publish handed to the hub")
    raw.vanish()
    await asyncio.sleep(0.1)
    hooks.publish_gate.set()
    await eventually(lambda: hooks.disconnected, what="on_disconnected")
    await asyncio.sleep(0.1)
    assert len(hooks.disconnected) == 1
    assert len(hooks.published) == 1


async def test_oversized_paho_publish_closes_only_that_client(
    good: PahoPeer, host: str, tls: ThrowawayTls, server: MqttServer, hooks: RecordingHooks
) -> None:
    bad = _paho(BAD, host, server, tls)
    await bad.start()
    try:
        bad.publish("devices/dev1/modules/bad/messages/events/", bytes(262_145), qos=1)
        await eventually(lambda: bad.disconnects, what="oversized sender dropped")
    finally:
        await bad.stop()
    assert server.stats.oversized_packets == 1
    assert all(p.client.client_id == GOOD for p in hooks.published)
    await _round_trip(good, server, hooks)
    assert good.disconnects == []


@pytest.mark.parametrize("limits", [Limits(max_clients=2)])
async def test_connections_beyond_max_clients_are_closed_at_once(
    good: PahoPeer, raw: RawClient, host: str, tls: ThrowawayTls, server: MqttServer
) -> None:
    extra = await RawClient.open(host, server.port, tls.client_context())
    try:
        assert await extra.closed_by_server(timeout_s=2.0)
    finally:
        await extra.close()
    assert server.stats.over_capacity == 1


def _bad_connect(host: str, port: int, context: ssl.SSLContext) -> int:
    """One refused CONNECT on a blocking socket; returns the CONNACK return code."""
    with (
        socket.create_connection((host, port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=host) as sock,
    ):
        sock.sendall(encode(Connect(GOOD, username="u", password=b"wrong")))
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            if not chunk:
                break
            connack += chunk
        return connack[3] if len(connack) == 4 else -1


def _flood(host: str, port: int, context: ssl.SSLContext, count: int) -> list[int]:
    # Clients run on threads so their TLS work stays off the event loop the server runs on.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: _bad_connect(host, port, context), range(count)))


async def test_bad_auth_flood_does_not_stall_a_good_client(
    good: PahoPeer, host: str, tls: ThrowawayTls, server: MqttServer, hooks: RecordingHooks
) -> None:
    flood = asyncio.create_task(
        asyncio.to_thread(_flood, host, server.port, tls.client_context(), 200)
    )
    round_trips: list[float] = []
    while not flood.done():
        round_trips.append(await _round_trip(good, server, hooks))
    assert await flood == [4] * 200
    assert server.stats.auth_failures == 200
    assert len(round_trips) >= 3
    assert max(round_trips) < 1.0, round_trips
    assert good.disconnects == []
    assert server.is_connected(GOOD)
