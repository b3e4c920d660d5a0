# mypy: disallow-untyped-calls=False
"""Module twins and direct methods: azure-iot-device on the module side, azure-iot-hub on the
service side, the simulator in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.iot.device import MethodResponse
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from simulator.fleet import Fleet
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    Inbox,
    client_id,
    deployment,
    module_client,
    registry_manager,
    running_simulator,
    set_handler,
    trust_simulator,
)

pytestmark = SDK_SOCKET_LEAK

DESIRED = {"threshold": 0.7, "model": {"name": "seed-cnn", "version": "1"}}


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    async with running_simulator(deployment(desired={"classifier": DESIRED})) as sim:
        trust_simulator(monkeypatch, sim)
        yield sim


def without_version(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "$version"}


async def test_a_module_gets_its_twin_with_the_deployments_desired_properties(
    sim: Fleet,
) -> None:
    async with module_client(sim, "classifier") as client:
        twin = await client.get_twin()
    assert set(twin) == {"desired", "reported"}
    assert without_version(twin["desired"]) == DESIRED
    assert isinstance(twin["desired"]["$version"], int)
    assert twin["reported"] == {"$version": 1}


async def test_a_reported_patch_merges_and_a_null_deletes_a_key(sim: Fleet) -> None:
    async with module_client(sim, "classifier") as client:
        await client.patch_twin_reported_properties(
            {"state": "running", "model": {"name": "a", "version": "1"}, "fps": 10}
        )
        await client.patch_twin_reported_properties({"model": {"version": "2"}, "fps": None})
        reported = (await client.get_twin())["reported"]
    assert without_version(reported) == {"state": "running", "model": {"name": "a", "version": "2"}}
    assert reported["$version"] == 3
    rm = await registry_manager(sim)
    service_view = await asyncio.to_thread(rm.get_module_twin, DEVICE, "classifier")
    assert service_view.properties.reported["model"] == {"name": "a", "version": "2"}
    assert "fps" not in service_view.properties.reported


async def test_a_service_desired_update_reaches_the_modules_patch_handler(
    sim: Fleet,
) -> None:
    inbox = Inbox()
    async with module_client(sim, "classifier") as client:
        await client.connect()
        await set_handler(client, "on_twin_desired_properties_patch_received", inbox.handler)
        rm = await registry_manager(sim)
        before = await asyncio.to_thread(rm.get_module_twin, DEVICE, "classifier")
        patch = Twin(properties=TwinProperties(desired={"threshold": 0.5}))
        updated = await asyncio.to_thread(
            rm.update_module_twin, DEVICE, "classifier", patch, before.etag
        )
        [received] = await inbox.wait_for(1)
    version = before.properties.desired["$version"] + 1
    assert updated.properties.desired["$version"] == version
    assert received == {"threshold": 0.5, "$version": version}


async def test_desired_changes_made_while_away_arrive_whole_after_the_sdk_reconnects(
    sim: Fleet,
) -> None:
    mqtt = sim.device(DEVICE).mqtt
    inbox = Inbox()
    async with module_client(sim, "classifier") as client:
        # IoT Hub's reconnection flow: connect, subscribe to patches, GET the whole twin.
        # The first get_twin() is also what subscribes to twin responses; edgeHub (and this
        # simulator) answers a GET only on that subscription, so without it the SDK's own
        # GET after a reconnect goes unanswered and the resync never happens.
        await client.connect()
        await set_handler(client, "on_twin_desired_properties_patch_received", inbox.handler)
        first = await client.get_twin()
        await mqtt.disconnect(client_id("classifier"))
        # As in the persistent-session test: updating in the same loop step as the check
        # makes the change certainly happen while the module is away (no push possible).
        assert not mqtt.is_connected(client_id("classifier"))
        sim.state.twins.update(DEVICE, "classifier", desired_patch={"threshold": 0.9})
        [received] = await inbox.wait_for(1, what="the desired resync after the reconnect")
        await eventually(lambda: mqtt.is_connected(client_id("classifier")), what="reconnected")
    # The SDK GETs the twin on reconnect and hands over the WHOLE desired document.
    assert received == {**DESIRED, "threshold": 0.9, "$version": first["desired"]["$version"] + 1}


async def test_a_direct_method_returns_the_modules_status_and_payload(sim: Fleet) -> None:
    async with module_client(sim, "classifier") as client:

        async def answer(request: Any) -> None:
            response = MethodResponse.create_from_method_request(
                request, 201, {"echo": request.payload, "name": request.name}
            )
            await client.send_method_response(response)

        await set_handler(client, "on_method_request_received", answer)
        rm = await registry_manager(sim)
        call = CloudToDeviceMethod(
            method_name="get_status", payload={"verbose": True}, response_timeout_in_seconds=10
        )
        result = await asyncio.to_thread(rm.invoke_device_module_method, DEVICE, "classifier", call)
    assert result.status == 201
    assert result.payload == {"echo": {"verbose": True}, "name": "get_status"}


async def test_a_method_on_a_module_that_is_not_connected_is_a_404(sim: Fleet) -> None:
    rm = await registry_manager(sim)
    call = CloudToDeviceMethod(method_name="get_status", response_timeout_in_seconds=5)
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.invoke_device_module_method, DEVICE, "classifier", call)
    assert caught.value.response.status_code == 404
    assert caught.value.response.headers["iothub-errorcode"] == "DeviceNotOnline"


async def test_a_method_the_connected_module_never_answers_is_a_504(sim: Fleet) -> None:
    inbox = Inbox()
    async with module_client(sim, "classifier") as client:
        await set_handler(client, "on_method_request_received", inbox.handler)  # never answers
        rm = await registry_manager(sim)
        call = CloudToDeviceMethod(method_name="get_status", response_timeout_in_seconds=1)
        with pytest.raises(HttpOperationError) as caught:
            await asyncio.to_thread(rm.invoke_device_module_method, DEVICE, "classifier", call)
        [request] = await inbox.wait_for(1)
    assert caught.value.response.status_code == 504
    assert request.name == "get_status"
    assert sim.device(DEVICE).edgehub.methods.pending_count == 0
