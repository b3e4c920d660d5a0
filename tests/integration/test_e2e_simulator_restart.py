# mypy: disallow-untyped-calls=False
"""After the simulator restarts, a reconnecting azure-iot-device client (clean_session=False,
never subscribing again) receives input messages, twin responses, desired patches and
method calls again, as with edgeHub since Azure/iotedge PR 5048."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from azure.iot.device import Message, MethodResponse
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    Inbox,
    client_id,
    module_client,
    registry_manager,
    set_handler,
    template_manifest,
    trust_simulator,
)
from tests.integration.restartable_simulator import restartable_simulator

pytestmark = SDK_SOCKET_LEAK

RECONNECT_TIMEOUT_S = 60.0


async def test_a_reconnected_sdk_client_receives_everything_after_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with restartable_simulator(template_manifest()) as host:
        messages, patches = Inbox(), Inbox()
        async with module_client(host.sim, "classifier") as client:

            async def answer(request: Any) -> None:
                response = MethodResponse.create_from_method_request(request, 200, {"ok": True})
                await client.send_method_response(response)

            await client.connect()
            await set_handler(client, "on_message_received", messages.handler)
            await set_handler(client, "on_twin_desired_properties_patch_received", patches.handler)
            await set_handler(client, "on_method_request_received", answer)
            await client.get_twin()

            sim = await host.restart()
            trust_simulator(monkeypatch, sim)
            mqtt = sim.device(DEVICE).mqtt
            await eventually(
                lambda: mqtt.is_connected(client_id("classifier")),
                RECONNECT_TIMEOUT_S,
                "the SDK reconnecting to the restarted simulator",
            )

            async with module_client(sim, "framesource") as camera:
                await camera.send_message_to_output(Message(b"frame", message_id="f1"), "frames")
            [received] = await messages.wait_for(1, what="an input message after the restart")
            assert (received.input_name, received.data) == ("frames", b"frame")

            twin = await asyncio.wait_for(client.get_twin(), 30)
            assert set(twin) == {"desired", "reported"}

            rm = await registry_manager(sim)
            patch = Twin(properties=TwinProperties(desired={"threshold": 0.25}))
            await asyncio.to_thread(rm.update_module_twin, DEVICE, "classifier", patch, "*")
            await eventually(
                lambda: any(p.get("threshold") == 0.25 for p in patches.items),
                30,
                "the desired patch after the restart",
            )

            call = CloudToDeviceMethod(method_name="ping", response_timeout_in_seconds=20)
            result = await asyncio.to_thread(
                rm.invoke_device_module_method, DEVICE, "classifier", call
            )
            assert (result.status, result.payload) == (200, {"ok": True})


async def test_messages_held_for_a_paused_input_survive_a_restart() -> None:
    async with restartable_simulator(template_manifest()) as host:
        messages = Inbox()
        async with module_client(host.sim, "classifier") as client:
            await client.connect()
            await set_handler(client, "on_message_received", messages.handler)
            await set_handler(client, "on_message_received", None)  # unsubscribes its inputs
            async with module_client(host.sim, "framesource") as camera:
                for n in range(3):
                    await camera.send_message_to_output(Message(b"f", message_id=f"h{n}"), "frames")
            sim = await host.restart()
            mqtt = sim.device(DEVICE).mqtt
            await eventually(
                lambda: mqtt.is_connected(client_id("classifier")), RECONNECT_TIMEOUT_S, "reconnect"
            )
            await set_handler(client, "on_message_received", messages.handler)
            received = await messages.wait_for(3, what="the held messages after the restart")
        assert [m.message_id for m in received] == ["h0", "h1", "h2"]
