"""Contract test of the module's ``Hub``: ``SdkHub`` over the real SDK and the simulator, and
``MqttHub`` over Eclipse Mosquitto, keep every promise ``LocalHub`` (the in-process fake) makes.
Each test runs against all three."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud_tools.broker_service import BrokerService
from edge_module.errors import HubError
from edge_module.hub import InboundMessage, MethodResult, OutboundMessage
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, SDK_SOCKET_LEAK, client_id
from tests.integration.hub_harness import (
    INPUT,
    MODULE,
    Harness,
    LocalHarness,
    MqttHarness,
    SdkHarness,
)
from tests.support import mosquitto
from tests.support.tools import require

pytestmark = SDK_SOCKET_LEAK


@pytest.fixture(params=["local", "sdk", "mqtt"])
async def harness(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Harness]:
    if request.param == "local":
        local = LocalHarness()
        yield local
        await local.close()
        return
    if request.param == "mqtt":
        require(mosquitto.missing())
        async with AsyncExitStack() as stack:
            yield await MqttHarness.open(stack, tmp_path)
        return
    async with AsyncExitStack() as stack:
        yield await SdkHarness.open(stack, monkeypatch)


@dataclass
class Module:
    """What a module registers; handlers run on the hub's loop, the test only reads."""

    messages: list[InboundMessage] = field(default_factory=list)
    desired: list[dict[str, Any]] = field(default_factory=list)

    async def on_message(self, message: InboundMessage) -> None:
        self.messages.append(message)

    async def on_desired(self, patch: dict[str, Any]) -> None:
        self.desired.append(patch)

    async def on_method(self, name: str, payload: Any) -> MethodResult:
        return MethodResult(200, {"name": name, "echo": payload})


async def connect(harness: Harness, *, with_method_handler: bool = True) -> Module:
    module = Module()
    harness.hub.on_message(module.on_message)
    harness.hub.on_desired_properties(module.on_desired)
    if with_method_handler:
        harness.hub.on_method(module.on_method)
    await harness.on_hub(harness.hub.connect())
    return module


async def test_a_sent_message_arrives_with_its_content_type_ids_and_properties(
    harness: Harness,
) -> None:
    await connect(harness)
    message = OutboundMessage(
        body=b'{"label":"cat"}',
        message_id="m-1",
        correlation_id="f-1",
        properties={"label": "cat", "schema": "edge-classifier/prediction/1"},
    )
    await harness.on_hub(harness.hub.send("predictions", message))
    assert await harness.sent("predictions", 1) == [message]


async def test_messages_on_an_input_reach_the_handler_in_arrival_order(
    harness: Harness,
) -> None:
    module = await connect(harness)
    frames = [
        InboundMessage(
            input_name=INPUT,
            body=bytes([i]) * 32,
            content_type="image/jpeg",
            content_encoding="binary",
            message_id=f"f-{i}",
            correlation_id=f"c-{i}",
            properties={"seq": str(i)},
        )
        for i in range(12)
    ]
    await harness.deliver(frames)
    await eventually(lambda: len(module.messages) >= len(frames), 15, "every frame handled")
    assert [m.message_id for m in module.messages] == [f.message_id for f in frames]
    for sent, got in zip(frames, module.messages, strict=True):
        assert (got.input_name, got.body, got.correlation_id) == (
            sent.input_name,
            sent.body,
            sent.correlation_id,
        )
        assert (got.content_type, got.content_encoding) == (sent.content_type, "binary")
        # edgeHub adds the sender's identity ($.cdid, $.cmid); the sender's own stay as sent.
        assert {k: got.properties[k] for k in sent.properties} == sent.properties


async def test_a_desired_patch_reaches_the_handler_and_the_desired_properties(
    harness: Harness,
) -> None:
    module = await connect(harness)
    await harness.push_desired({"threshold": 0.4, "labels": {"keep": "cat"}})
    await eventually(lambda: module.desired, 15, "the desired patch at the handler")
    [patch] = module.desired
    assert {k: patch[k] for k in ("threshold", "labels")} == {
        "threshold": 0.4,
        "labels": {"keep": "cat"},
    }
    desired = await harness.on_hub(harness.hub.get_desired_properties())
    assert desired["threshold"] == 0.4


async def test_a_method_call_is_answered_by_the_method_handler(harness: Harness) -> None:
    await connect(harness)
    result = await harness.call_method("get_status", {"verbose": True})
    assert result == MethodResult(200, {"name": "get_status", "echo": {"verbose": True}})


async def test_a_method_without_a_handler_is_answered_501(harness: Harness) -> None:
    await connect(harness, with_method_handler=False)
    result = await harness.call_method("get_status", None)
    assert result.status == 501


async def test_reports_merge_and_a_null_deletes_a_key(harness: Harness) -> None:
    await connect(harness)
    await harness.on_hub(
        harness.hub.report({"state": "running", "model": {"name": "a", "version": "1"}})
    )
    await harness.on_hub(harness.hub.report({"model": {"version": "2"}, "state": None}))
    assert await harness.reported() == {"model": {"name": "a", "version": "2"}}


async def test_sending_after_close_fails_with_a_hub_error(harness: Harness) -> None:
    await connect(harness)
    await harness.close()
    with pytest.raises(HubError):
        await harness.on_hub(harness.hub.send("predictions", OutboundMessage(body=b"{}")))


async def test_desired_changes_made_while_away_reach_the_handler_after_a_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SDK only: LocalHub has no connection to lose."""
    async with AsyncExitStack() as stack:
        harness = await SdkHarness.open(stack, monkeypatch)
        sim = harness.sim
        mqtt = sim.device(DEVICE).mqtt
        module = await connect(harness)
        await mqtt.disconnect(client_id(MODULE))
        # Same loop step as the check: the change certainly happens while the module is away.
        assert not mqtt.is_connected(client_id(MODULE))
        sim.state.twins.update(DEVICE, MODULE, desired_patch={"threshold": 0.9})
        await eventually(lambda: module.desired, 15, "the desired resync after the reconnect")
    assert module.desired[-1]["threshold"] == 0.9


async def test_desired_changes_made_across_a_broker_restart_reach_the_handler(
    tmp_path: Path,
) -> None:
    """MQTT only: the hub reconnects by itself and subscribes again, and the retained desired
    document comes with the subscription."""
    require(mosquitto.missing())
    async with AsyncExitStack() as stack:
        harness = await MqttHarness.open(stack, tmp_path)
        module = await connect(harness)
        await asyncio.to_thread(harness.broker.restart)
        harness.operator = await asyncio.to_thread(BrokerService, harness.operator.address)
        stack.callback(harness.operator.close)
        await harness.push_desired({"threshold": 0.9})
        await eventually(lambda: module.desired, 30, "the desired document after the restart")
        assert harness.hub.connected
    assert module.desired[-1]["threshold"] == 0.9
