# mypy: disallow-untyped-calls=False
"""Module messages end to end: azure-iot-device clients, the simulator's edgeHub and routes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.iot.device import Message

from simulator.fleet import Fleet
from simulator.messages import Message as HubMessage
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    Inbox,
    client_id,
    deployment,
    module_client,
    route_to_input,
    running_simulator,
    set_handler,
    template_manifest,
    wait_upstream,
)

pytestmark = SDK_SOCKET_LEAK


@pytest.fixture
async def sim() -> AsyncIterator[Fleet]:
    async with running_simulator(template_manifest()) as sim:
        yield sim


def frame_message(body: bytes, message_id: str, **properties: str) -> Any:
    message = Message(
        body,
        message_id=message_id,
        content_type="image/jpeg",
        content_encoding="binary",
    )
    message.correlation_id = f"corr-{message_id}"
    message.custom_properties = dict(properties)
    return message


async def test_an_output_message_reaches_the_routed_input_with_its_properties(
    sim: Fleet,
) -> None:
    inbox = Inbox()
    async with module_client(sim, "framesource") as camera, module_client(sim, "classifier") as cls:
        await set_handler(cls, "on_message_received", inbox.handler)
        await camera.send_message_to_output(
            frame_message(b"\xff\xd8 not really a jpeg", "f-1", truth="star", seq="1"), "frames"
        )
        [received] = await inbox.wait_for(1)
    assert received.input_name == "frames"
    assert received.data == b"\xff\xd8 not really a jpeg"
    assert (received.message_id, received.correlation_id) == ("f-1", "corr-f-1")
    assert (received.content_type, received.content_encoding) == ("image/jpeg", "binary")
    # edgeHub stamps the sender's identity; the SDK hands those over as custom properties.
    assert received.custom_properties == {
        "$.cdid": DEVICE,
        "$.cmid": "framesource",
        "seq": "1",
        "truth": "star",
    }


async def test_an_upstream_output_is_stored_with_its_properties_and_enqueue_time(
    sim: Fleet,
) -> None:
    body = json.dumps({"label": "cat"}).encode()
    before = dt.datetime.now(dt.UTC)
    async with module_client(sim, "classifier") as cls:
        message = Message(body, content_type="application/json", content_encoding="utf-8")
        message.correlation_id = "f-9"
        message.custom_properties = {"label": "cat", "schema": "edge-classifier/prediction/1"}
        await cls.send_message_to_output(message, "predictions")
    [stored] = await wait_upstream(sim, 1)
    assert (stored.device_id, stored.module_id, stored.output_name) == (
        DEVICE,
        "classifier",
        "predictions",
    )
    assert stored.message.body == body
    assert dict(stored.message.properties) == {
        "label": "cat",
        "schema": "edge-classifier/prediction/1",
    }
    assert stored.message.system_properties() == {
        "correlationId": "f-9",
        "contentType": "application/json",
        "contentEncoding": "utf-8",
        "connectionDeviceId": DEVICE,
        "connectionModuleId": "classifier",
        "outputName": "predictions",
    }
    assert before <= stored.enqueued_time <= dt.datetime.now(dt.UTC)


FILTERED_ROUTES = {
    # $body is visible only for application/json + UTF-8 bodies, as in IoT Hub.
    "hot": route_to_input("framesource", "readings", "classifier", "hot").replace(
        " INTO", " WHERE $body.temperature > 30 INTO"
    ),
    "critical": "FROM /messages/modules/framesource/outputs/* WHERE level = 'critical' INTO $upstream",
}


def reading(temperature: float, level: str, *, json_body: bool = True) -> Any:
    message = Message(json.dumps({"temperature": temperature}).encode())
    if json_body:
        message.content_type, message.content_encoding = "application/json", "utf-8"
    message.message_id = f"{level}-{temperature}"
    message.custom_properties = {"level": level}
    return message


async def test_a_route_condition_passes_only_the_messages_that_match_it() -> None:
    inbox = Inbox()
    async with (
        running_simulator(deployment(routes=FILTERED_ROUTES)) as sim,
        module_client(sim, "framesource") as sensor,
        module_client(sim, "classifier") as sink,
    ):
        await set_handler(sink, "on_message_received", inbox.handler)
        for message in (
            reading(35, "info"),  # hot only
            reading(20, "critical"),  # critical only
            reading(40, "info", json_body=False),  # opaque body: neither
            reading(10, "info"),  # neither
            reading(50, "critical"),  # both: the last one, so everything before it has routed
        ):
            await sensor.send_message_to_output(message, "readings")
        hot = await inbox.wait_for(2)
        critical = await wait_upstream(sim, 2, module_id="framesource")
    assert [m.message_id for m in hot] == ["info-35", "critical-50"]
    assert {m.input_name for m in hot} == {"hot"}
    assert [s.message.message_id for s in critical] == ["critical-20", "critical-50"]
    assert len(inbox.items) == 2


async def test_a_message_routed_while_a_module_is_away_arrives_after_the_sdk_reconnects(
    sim: Fleet,
) -> None:
    inbox = Inbox()
    mqtt = sim.device(DEVICE).mqtt
    async with module_client(sim, "classifier") as cls:
        await set_handler(cls, "on_message_received", inbox.handler)
        connections = sim.device(DEVICE).edgehub.counters["connections"]
        await mqtt.disconnect(client_id("classifier"))
        # The SDK redials within ~10 ms, but its TLS handshake needs this loop, so checking
        # and routing in one step (no await in between reaches the loop) is certainly
        # "while away". A second SDK sender could lose that race.
        assert not mqtt.is_connected(client_id("classifier"))
        await sim.device(DEVICE).edgehub.route(
            DEVICE,
            "framesource",
            HubMessage(
                b"sent while away",
                message_id="away-1",
                connection_device_id=DEVICE,
                connection_module_id="framesource",
                output_name="frames",
            ),
        )
        [received] = await inbox.wait_for(1, what="the held message after the reconnect")
        assert received.data == b"sent while away"
        assert received.message_id == "away-1"
        assert sim.device(DEVICE).edgehub.counters["connections"] == connections + 1
        # The SDK never resubscribes: the persistent session kept its input subscription.
        await eventually(lambda: mqtt.is_connected(client_id("classifier")), what="reconnected")
