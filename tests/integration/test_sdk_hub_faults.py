# mypy: disallow-untyped-calls=False
"""The SDK adapter and the outbox over the real azure-iot-device client and the simulator:
what happens to outcomes while edgeHub is away, and to frames when the module falls behind.

``SdkHub`` lives on its own loop and thread (``ModuleLoop``), as the module does in its own
process, while the simulator runs on the test's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubModuleClient

from classifier.metrics import Metrics
from edge_module.hub import InboundMessage, OutboundMessage
from edge_module.outbox import Outbox, OutboxConfig, Outgoing
from edge_module.sdk_hub import SdkHub
from edge_module.watchdog import HubWatchdog
from simulator.hub.upstream import MessageFilter
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    client_id,
    module_client,
    template_manifest,
)
from tests.integration.hub_harness import ModuleLoop
from tests.integration.restartable_simulator import RestartableSimulator, restartable_simulator

pytestmark = SDK_SOCKET_LEAK


@pytest.fixture
async def host() -> AsyncIterator[RestartableSimulator]:
    async with restartable_simulator(template_manifest()) as host:
        yield host


async def open_hub(
    stack: AsyncExitStack, host: RestartableSimulator, intake_capacity: int = 32
) -> tuple[ModuleLoop, SdkHub]:
    module_loop = ModuleLoop()
    stack.callback(module_loop.close)
    connection_string = host.sim.device(DEVICE).module_connection_string("classifier")
    ca_pem = host.sim.ca_path.read_text()

    async def build() -> SdkHub:
        client = IoTHubModuleClient.create_from_connection_string(
            connection_string, server_verification_cert=ca_pem, connection_retry_interval=1
        )
        return SdkHub(client, asyncio.get_running_loop(), intake_capacity)

    hub = await module_loop.run(build())
    stack.push_async_callback(lambda: module_loop.run(hub.close()))
    return module_loop, hub


def outcome(number: int) -> Outgoing:
    message = OutboundMessage(
        body=b"{}", message_id=f"m-{number}", correlation_id=f"frame-{number}"
    )
    return Outgoing("predictions", message, None, f"frame-{number}")


async def test_outcomes_made_while_edgehub_is_down_are_sent_in_order_when_it_returns(
    host: RestartableSimulator,
) -> None:
    async with AsyncExitStack() as stack:
        module_loop, hub = await open_hub(stack, host)
        metrics = Metrics()

        async def start() -> Outbox:
            await hub.connect()
            watchdog = HubWatchdog(300.0, lambda: hub.connected)
            box = Outbox(hub, OutboxConfig(retry_max_s=1.0), metrics, watchdog)
            box.start()
            return box

        outbox = await module_loop.run(start())
        stack.push_async_callback(lambda: module_loop.run(outbox.close()))

        async def produce_while_down() -> None:
            for number in range(1, 21):
                await module_loop.run(outbox.put(outcome(number)))
            # The SDK raises at once while edgeHub is away; the outbox keeps them all.
            await eventually(
                lambda: metrics.counters["outbox_retries"] >= 2, 30, "sends failing while down"
            )
            assert outbox.depth == 20

        sim = await host.restart(while_down=produce_while_down)
        store = sim.state.upstream
        where = MessageFilter(module_id="classifier", output_name="predictions")
        await eventually(lambda: len(store.read(where=where)) >= 20, 60, "the kept outcomes")
        ids = [s.message.correlation_id for s in store.read(where=where)]
        # MQTT delivers at least once: a copy of an outcome may follow the first one.
        assert list(dict.fromkeys(ids)) == [f"frame-{n}" for n in range(1, 21)]
        assert await module_loop.run(outbox.flush(10))


async def test_a_module_that_falls_behind_stops_receiving_and_loses_nothing(
    host: RestartableSimulator,
) -> None:
    capacity = 8
    handled: list[str] = []
    async with AsyncExitStack() as stack:
        module_loop, hub = await open_hub(stack, host, intake_capacity=capacity)

        async def slow_consumer(message: InboundMessage) -> None:
            await asyncio.sleep(0.02)  # a module scoring 50 frames a second
            handled.append(message.message_id or "")

        async def start() -> None:
            hub.on_message(slow_consumer)
            await hub.connect()

        await module_loop.run(start())
        mqtt = host.sim.device(DEVICE).mqtt
        async with module_client(host.sim, "framesource") as camera:
            sent = [f"f-{n}" for n in range(150)]
            for frame_id in sent:  # as fast as edgeHub acknowledges them
                await camera.send_message_to_output(Message(b"x", message_id=frame_id), "frames")
            await eventually(lambda: len(handled) == len(sent), 60, "every frame handled")
        assert handled == sent
        assert hub.intake_pauses >= 1
        assert hub.intake_peak <= capacity
        # Receiving was resumed: the adapter is subscribed to its inputs again.
        await eventually(
            lambda: any("/inputs/" in f for f in mqtt.subscriptions(client_id("classifier"))),
            10,
            "the inputs subscription restored",
        )
