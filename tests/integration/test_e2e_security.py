# mypy: disallow-untyped-calls=False
"""What the simulator's edgeHub refuses, seen from the real SDK and from paho-mqtt itself."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator

import pytest
from azure.iot.device import Message
from azure.iot.device.exceptions import ClientError, CredentialError

from simulator.fleet import Fleet
from simulator.hub.identity import new_key
from simulator.mqtt import EDGEHUB_MAX_MESSAGE_BYTES
from simulator.mqtt.testing import PahoPeer, eventually, throwaway_tls
from simulator.sas import build_module_token
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    Inbox,
    client_id,
    module_client,
    running_simulator,
    set_handler,
    template_manifest,
)

pytestmark = SDK_SOCKET_LEAK

SUBACK_FAILURE = 0x80


@pytest.fixture
async def sim() -> AsyncIterator[Fleet]:
    async with running_simulator(template_manifest()) as sim:
        yield sim


def paho_module(sim: Fleet, module_id: str) -> PahoPeer:
    """paho-mqtt speaking as ``module_id`` with valid credentials, like a hand-rolled client."""
    hub = sim.hub.host_name
    key = sim.state.registry.require_module(DEVICE, module_id).primary_key
    certs = sim.certs
    assert certs is not None
    return PahoPeer(
        client_id(module_id),
        sim.device(DEVICE).address,
        sim.device(DEVICE).settings.mqtt_port,
        certs.client_ssl_context(),
        username=f"{hub}/{DEVICE}/{module_id}/?api-version=2019-10-01",
        password=build_module_token(hub, DEVICE, module_id, key, int(time.time()) + 3600),
    )


def causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def test_a_module_with_the_wrong_key_is_refused_with_a_credential_error(
    sim: Fleet,
) -> None:
    right = sim.device(DEVICE).module_connection_string("classifier")
    wrong = right.rsplit("SharedAccessKey=", 1)[0] + "SharedAccessKey=" + new_key()
    async with module_client(sim, "classifier", connection_string=wrong) as client:
        with pytest.raises(CredentialError):
            await client.connect()
    assert sim.device(DEVICE).edgehub.counters["auth_refused"] >= 1
    assert not sim.device(DEVICE).mqtt.is_connected(client_id("classifier"))


async def test_a_module_that_trusts_another_ca_fails_the_tls_handshake(sim: Fleet) -> None:
    other_ca = throwaway_tls(sim.device(DEVICE).address).ca_pem
    async with module_client(sim, "classifier", ca_pem=other_ca) as client:
        with pytest.raises(ClientError, match="TLS") as caught:
            await client.connect()
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in causes(caught.value))
    assert sim.device(DEVICE).mqtt.stats.connects_accepted == 0


async def test_the_sdk_refuses_to_send_a_message_over_256_kb(sim: Fleet) -> None:
    async with module_client(sim, "framesource") as camera:
        with pytest.raises(ValueError, match="256 KB"):
            await camera.send_message_to_output(
                Message(b"x" * (EDGEHUB_MAX_MESSAGE_BYTES + 1)), "frames"
            )


async def test_a_raw_client_publishing_300_kb_is_dropped_while_others_keep_working(
    sim: Fleet,
) -> None:
    inbox = Inbox()
    rogue = paho_module(sim, "framesource")
    async with module_client(sim, "classifier") as receiver:
        await set_handler(receiver, "on_message_received", inbox.handler)
        try:
            assert (await rogue.start())[0] == 0
            topic = f"devices/{DEVICE}/modules/framesource/messages/events/%24.on=frames"
            mid = rogue.publish(topic, b"x" * 300 * 1024)
            await eventually(lambda: rogue.disconnects, what="the server dropping the client")
            assert mid not in rogue.completed  # never acknowledged
        finally:
            await rogue.stop()
        assert sim.device(DEVICE).edgehub.counters["routed"] == 0
        # The same identity over the SDK, and the receiving module, are unaffected.
        async with module_client(sim, "framesource") as camera:
            await camera.send_message_to_output(Message(b"small"), "frames")
        [received] = await inbox.wait_for(1)
    assert received.data == b"small"


async def test_a_module_may_not_publish_as_another_module(sim: Fleet) -> None:
    rogue = paho_module(sim, "framesource")
    try:
        assert (await rogue.start())[0] == 0
        topic = f"devices/{DEVICE}/modules/classifier/messages/events/%24.on=predictions"
        mid = rogue.publish(topic, b'{"label": "forged"}')
        await eventually(lambda: rogue.disconnects, what="the server dropping the client")
        assert mid not in rogue.completed
    finally:
        await rogue.stop()
    assert sim.device(DEVICE).edgehub.counters["publish_refused"] == 1
    assert sim.state.upstream.count() == 0


async def test_a_module_may_not_subscribe_to_another_modules_inputs(sim: Fleet) -> None:
    rogue = paho_module(sim, "framesource")
    try:
        assert (await rogue.start())[0] == 0
        other = await rogue.subscribe(f"devices/{DEVICE}/modules/classifier/inputs/#")
        own = await rogue.subscribe(f"devices/{DEVICE}/modules/framesource/inputs/#")
    finally:
        await rogue.stop()
    assert other == (SUBACK_FAILURE,)
    assert own == (1,)
