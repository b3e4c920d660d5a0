# mypy: disallow-untyped-calls=False
"""Two ways to drive the module's ``Hub`` from the outside, for one contract test.

- ``LocalHarness``: ``LocalHub``, the in-process fake the scoring command and unit tests use.
- ``MqttHarness``: ``MqttHub`` over Eclipse Mosquitto, the operator's ``BrokerService`` on
  the other side.
- ``SdkHarness``: ``SdkHub`` over the real azure-iot-device client, connected through the
  simulator's edgeHub; frames come from a test-side SDK client playing ``framesource``, twin and
  method calls from azure-iot-hub, and sent messages are read back from the upstream store.

``SdkHub`` runs on its own event loop in its own thread (``ModuleLoop``), as the module runs in
its own process. That is the honest set-up: its ``connect`` sets SDK handlers, which block the
calling thread until edgeHub acknowledges the subscriptions, so on the test's loop (which also
runs the simulator) it would wait for itself. It also makes the handlers' hand-off to "the
module's loop" a real cross-thread hand-off, which is what the adapter exists to do.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubModuleClient
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_tools.broker_service import BrokerAddress, BrokerService
from edge_module.hub import Hub, InboundMessage, MethodResult, OutboundMessage
from edge_module.local_hub import LocalHub
from edge_module.mqtt_hub import MqttHub
from edge_module.mqtt_settings import MqttSettings
from edge_module.mqtt_topics import output_filter
from edge_module.sdk_hub import SdkHub
from simulator.fleet import Fleet
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    module_client,
    registry_manager,
    running_simulator,
    template_manifest,
    trust_simulator,
    wait_upstream,
)
from tests.support.mosquitto import PREFIX, USERS, Mosquitto

T = TypeVar("T")
MODULE = "classifier"
INPUT = "frames"  # the template routes framesource/frames here


class LocalHarness:
    def __init__(self) -> None:
        self.local = LocalHub()
        self.hub: Hub = self.local

    async def on_hub(self, call: Coroutine[Any, Any, T]) -> T:
        return await call  # LocalHub's handlers run on the caller's loop

    async def deliver(self, messages: list[InboundMessage]) -> None:
        for message in messages:
            await self.local.deliver(message)

    async def push_desired(self, patch: dict[str, Any]) -> None:
        await self.local.push_desired(patch)

    async def call_method(self, name: str, payload: Any) -> MethodResult:
        return await self.local.call_method(name, payload)

    async def sent(self, output: str, count: int) -> list[OutboundMessage]:
        return list(self.local.sent[output][:count])

    async def reported(self) -> dict[str, Any]:
        return dict(self.local.reported)

    async def close(self) -> None:
        await self.local.close()


class ModuleLoop:
    """An event loop on its own thread: where the module under test lives."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # A daemon, so a test that fails before close() cannot keep pytest from exiting.
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="module-loop", daemon=True
        )
        self._thread.start()

    async def run(self, call: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class SdkHarness:
    def __init__(self, sim: Fleet, module_loop: ModuleLoop, hub: SdkHub, camera: Any) -> None:
        self.sim = sim
        self.module_loop = module_loop
        self.hub: Hub = hub
        self.camera = camera

    @classmethod
    async def open(cls, stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch) -> SdkHarness:
        stack.callback(gc.collect)  # runs last: leaked SDK sockets surface in this test
        sim = await stack.enter_async_context(running_simulator(template_manifest()))
        trust_simulator(monkeypatch, sim)
        module_loop = ModuleLoop()
        stack.callback(module_loop.close)
        connection_string = sim.device(DEVICE).module_connection_string(MODULE)
        ca_pem = sim.ca_path.read_text()

        async def build() -> SdkHub:
            client = IoTHubModuleClient.create_from_connection_string(
                connection_string, server_verification_cert=ca_pem, connection_retry_interval=1
            )
            return SdkHub(client, asyncio.get_running_loop())

        hub = await module_loop.run(build())
        stack.push_async_callback(lambda: module_loop.run(hub.close()))
        camera = await stack.enter_async_context(module_client(sim, "framesource"))
        return cls(sim, module_loop, hub, camera)

    async def on_hub(self, call: Coroutine[Any, Any, T]) -> T:
        return await self.module_loop.run(call)

    async def deliver(self, messages: list[InboundMessage]) -> None:
        for inbound in messages:
            assert inbound.input_name == INPUT, "the template routes only framesource/frames"
            message = Message(
                inbound.body,
                message_id=inbound.message_id,
                content_encoding=inbound.content_encoding,
                content_type=inbound.content_type,
            )
            message.correlation_id = inbound.correlation_id
            message.custom_properties = dict(inbound.properties)
            await self.camera.send_message_to_output(message, "frames")

    async def push_desired(self, patch: dict[str, Any]) -> None:
        rm = await registry_manager(self.sim)
        twin = Twin(properties=TwinProperties(desired=patch))
        await asyncio.to_thread(rm.update_module_twin, DEVICE, MODULE, twin, "*")

    async def call_method(self, name: str, payload: Any) -> MethodResult:
        rm = await registry_manager(self.sim)
        call = CloudToDeviceMethod(
            method_name=name, payload=payload, response_timeout_in_seconds=10
        )
        result = await asyncio.to_thread(rm.invoke_device_module_method, DEVICE, MODULE, call)
        return MethodResult(result.status, result.payload)

    async def sent(self, output: str, count: int) -> list[OutboundMessage]:
        stored = await wait_upstream(self.sim, count, module_id=MODULE, output_name=output)
        return [
            OutboundMessage(
                body=s.message.body,
                content_type=s.message.content_type or "",
                content_encoding=s.message.content_encoding or "",
                message_id=s.message.message_id,
                correlation_id=s.message.correlation_id,
                properties=dict(s.message.properties),
            )
            for s in stored[:count]
        ]

    async def reported(self) -> dict[str, Any]:
        reported = self.sim.state.twins.get_for_module(DEVICE, MODULE)["reported"]
        assert isinstance(reported, dict)
        return {k: v for k, v in reported.items() if k != "$version"}

    async def close(self) -> None:
        await self.on_hub(self.hub.close())


class MqttHarness:
    """``MqttHub`` against Eclipse Mosquitto: frames published, twin and method calls made,
    and outputs read back by the operator's ``BrokerService``, on the topics of docs/mqtt.md."""

    def __init__(
        self, broker: Mosquitto, hub: MqttHub, operator: BrokerService, outputs: list[Any]
    ) -> None:
        self.broker = broker
        self.hub: Hub = hub
        self.mqtt_hub = hub
        self.operator = operator
        self._outputs = outputs  # paho messages on any module output, in arrival order

    @classmethod
    async def open(cls, stack: AsyncExitStack, directory: Path) -> MqttHarness:
        broker = Mosquitto.start(directory)
        stack.callback(broker.stop)
        address = BrokerAddress(
            broker.host,
            broker.port,
            str(broker.ca_path),
            "operator",
            USERS["operator"],
            PREFIX,
        )
        operator = await asyncio.to_thread(BrokerService, address)
        stack.callback(operator.close)
        outputs: list[Any] = []
        await asyncio.to_thread(operator.subscribe, output_filter(PREFIX, "+"), outputs.append)
        env = broker.module_env(MODULE, f"{MODULE}-1")
        hub = MqttHub(MqttSettings.from_env(env), asyncio.get_running_loop())
        stack.push_async_callback(hub.close)
        return cls(broker, hub, operator, outputs)

    async def on_hub(self, call: Coroutine[Any, Any, T]) -> T:
        return await call  # the adapter never blocks its caller's loop

    async def deliver(self, messages: list[InboundMessage]) -> None:
        for inbound in messages:
            properties = Properties(PacketTypes.PUBLISH)
            if inbound.content_type:
                properties.ContentType = inbound.content_type
            if inbound.correlation_id:
                properties.CorrelationData = inbound.correlation_id.encode()
            user = [("message-id", inbound.message_id or "")]
            user += [("content-encoding", inbound.content_encoding or "")]
            properties.UserProperty = user + list(inbound.properties.items())
            topic = f"{PREFIX}/streams/{inbound.input_name}/camera-1"
            await asyncio.to_thread(self.operator.publish, topic, inbound.body, properties)

    async def push_desired(self, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(self.operator.update_desired, MODULE, patch)

    async def call_method(self, name: str, payload: Any) -> MethodResult:
        status, response = await asyncio.to_thread(
            self.operator.invoke, f"{MODULE}-1", MODULE, name, payload, 10
        )
        return MethodResult(status, response)

    async def sent(self, output: str, count: int) -> list[OutboundMessage]:
        def on_output() -> list[Any]:
            return [m for m in self._outputs if m.topic.split("/")[2] == output]

        await eventually(lambda: len(on_output()) >= count, 15, f"{count} messages on {output}")
        return [_outbound(m) for m in on_output()[:count]]

    async def reported(self) -> dict[str, Any]:
        replicas = await asyncio.to_thread(self.operator.reported, MODULE)
        reported = replicas[f"{MODULE}-1"]
        assert isinstance(reported, dict)
        return reported

    async def close(self) -> None:
        await self.hub.close()


def _outbound(message: Any) -> OutboundMessage:
    """An MQTT v5 message read back by the contract's rules, independently of the adapter."""
    user = dict(getattr(message.properties, "UserProperty", []))
    correlation = getattr(message.properties, "CorrelationData", None)
    return OutboundMessage(
        body=message.payload,
        content_type=getattr(message.properties, "ContentType", ""),
        content_encoding=user.pop("content-encoding", ""),
        message_id=user.pop("message-id", None),
        correlation_id=correlation.decode() if correlation is not None else None,
        properties=user,
    )


Harness = LocalHarness | SdkHarness | MqttHarness
