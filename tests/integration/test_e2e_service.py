# mypy: disallow-untyped-calls=False
"""The service side end to end: azure-iot-hub against the simulator, with live modules."""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.iot.device import Message
from azure.iot.hub.models import (
    Configuration,
    ConfigurationContent,
    QuerySpecification,
    Twin,
    TwinProperties,
)
from msrest.exceptions import HttpOperationError

from simulator.device.runtime import ModuleCommand, RuntimeStatus
from simulator.fleet import Fleet
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    Inbox,
    configuration_manager,
    module_client,
    registry_manager,
    running_simulator,
    set_handler,
    template_manifest,
    trust_simulator,
    wait_upstream,
)

pytestmark = SDK_SOCKET_LEAK

# A stand-in for a module image that only has to stay up; -I -S so it starts in milliseconds.
IDLE_MODULE = ModuleCommand([sys.executable, "-I", "-S", "-c", "import time; time.sleep(120)"])


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    async with running_simulator(template_manifest(), {"sidecar": IDLE_MODULE}) as sim:
        trust_simulator(monkeypatch, sim)
        yield sim


def with_sidecar_and_upstream_frames(manifest: dict[str, Any]) -> dict[str, Any]:
    """A new deployment: one more module, frames also go upstream, new classifier settings."""
    changed = copy.deepcopy(manifest)
    content = changed["modulesContent"]
    agent = content["$edgeAgent"]["properties.desired"]
    sidecar = copy.deepcopy(agent["modules"]["framesource"])
    sidecar["settings"]["image"] = "local/sidecar:1.0"
    agent["modules"]["sidecar"] = sidecar
    routes = content["$edgeHub"]["properties.desired"]["routes"]
    routes["framesToCloud"] = "FROM /messages/modules/framesource/outputs/frames INTO $upstream"
    content["classifier"] = {"properties.desired": {"threshold": 0.25}}
    return changed


async def test_the_service_reads_and_updates_the_twin_of_a_live_module(sim: Fleet) -> None:
    async with module_client(sim, "classifier") as client:
        await client.patch_twin_reported_properties({"state": "running"})
        rm = await registry_manager(sim)
        twin = await asyncio.to_thread(rm.get_module_twin, DEVICE, "classifier")
        patch = Twin(tags={"site": "dock-3"}, properties=TwinProperties(desired={"top_k": 2}))
        updated = await asyncio.to_thread(
            rm.update_module_twin, DEVICE, "classifier", patch, twin.etag
        )
        seen_by_module = await client.get_twin()
    assert (twin.module_id, twin.connection_state) == ("classifier", "Connected")
    assert twin.properties.reported["state"] == "running"
    assert updated.tags == {"site": "dock-3"}
    assert updated.etag != twin.etag
    assert seen_by_module["desired"]["top_k"] == 2


async def test_configurations_can_be_created_read_listed_and_deleted(sim: Fleet) -> None:
    cm = await configuration_manager(sim)
    content = ConfigurationContent(modules_content=template_manifest()["modulesContent"])
    created = await asyncio.to_thread(
        cm.create_configuration,
        Configuration(
            id="classifier-rollout",
            content=content,
            target_condition="tags.site='dock-3'",
            priority=5,
            labels={"app": "classifier"},
        ),
    )
    fetched = await asyncio.to_thread(cm.get_configuration, "classifier-rollout")
    listed = await asyncio.to_thread(cm.get_configurations, 10)
    await asyncio.to_thread(cm.delete_configuration, "classifier-rollout")
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(cm.get_configuration, "classifier-rollout")
    assert created.etag
    assert fetched.priority == 5 and fetched.labels == {"app": "classifier"}
    assert fetched.content.modules_content["$edgeHub"] == content.modules_content["$edgeHub"]
    assert [c.id for c in listed] == ["simulator-base", "classifier-rollout"]  # base: startup
    assert caught.value.response.status_code == 404


async def test_applying_a_new_deployment_reconciles_modules_routes_and_twins(
    sim: Fleet,
) -> None:
    assert sim.device(DEVICE).manifest is not None
    runtime = sim.device(DEVICE).runtime
    assert "sidecar" not in runtime.module_reports()
    desired = Inbox()
    async with module_client(sim, "framesource") as camera, module_client(sim, "classifier") as cls:
        await cls.connect()
        await set_handler(cls, "on_twin_desired_properties_patch_received", desired.handler)
        cm = await configuration_manager(sim)
        new = with_sidecar_and_upstream_frames(template_manifest())
        await asyncio.to_thread(
            cm.apply_configuration_on_edge_device,
            DEVICE,
            ConfigurationContent(modules_content=new["modulesContent"]),
        )
        [patch] = await desired.wait_for(1, what="the new desired properties at the module")
        await camera.send_message_to_output(Message(b"frame", message_id="f-1"), "frames")
        [upstream] = await wait_upstream(sim, 1, module_id="framesource", output_name="frames")
    await eventually(
        lambda: runtime.module_reports()["sidecar"].runtime_status is RuntimeStatus.RUNNING,
        timeout_s=15,
        what="the new module running",
    )
    await sim.settled()
    assert upstream.message.message_id == "f-1"
    # The new deployment's desired properties replace the template's whole: what it drops
    # reaches the module as nulls, as a JSON merge patch deletes keys.
    assert {k: v for k, v in patch.items() if k != "$version"} == {
        "threshold": 0.25,
        "schemaVersion": None,
        "inference": None,
    }
    manifest = sim.device(DEVICE).manifest
    assert manifest is not None
    assert set(manifest.modules) == {"classifier", "framesource", "sidecar"}


def with_a_broken_route(manifest: dict[str, Any]) -> dict[str, Any]:
    broken = with_sidecar_and_upstream_frames(manifest)
    broken["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]["bad"] = (
        "FROM /messages/* INTO nowhere"
    )
    return broken


def with_a_bad_desired_property_name(manifest: dict[str, Any]) -> dict[str, Any]:
    broken = with_sidecar_and_upstream_frames(manifest)
    broken["modulesContent"]["classifier"] = {"properties.desired": {"top k": 2}}
    return broken


@pytest.mark.parametrize("breakage", [with_a_broken_route, with_a_bad_desired_property_name])
async def test_an_invalid_deployment_is_refused_with_400_and_changes_nothing(
    sim: Fleet, breakage: Any
) -> None:
    device = sim.device(DEVICE)
    before_version = sim.state.twins.desired_version(DEVICE, "classifier")
    before = (device.manifest, device.runtime.manifest, device.edgehub.router)
    cm = await configuration_manager(sim)
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(
            cm.apply_configuration_on_edge_device,
            DEVICE,
            ConfigurationContent(modules_content=breakage(template_manifest())["modulesContent"]),
        )
    assert caught.value.response.status_code == 400
    assert caught.value.response.headers["iothub-errorcode"] == "ArgumentInvalid"
    assert sim.state.twins.desired_version(DEVICE, "classifier") == before_version
    await sim.settled()
    assert (device.manifest, device.runtime.manifest, device.edgehub.router) == before
    assert sim.state.registry.get_module(DEVICE, "sidecar") is None
    # The old route still carries frames to the classifier.
    inbox = Inbox()
    async with module_client(sim, "framesource") as camera, module_client(sim, "classifier") as cls:
        await set_handler(cls, "on_message_received", inbox.handler)
        await camera.send_message_to_output(Message(b"frame"), "frames")
        [received] = await inbox.wait_for(1)
    assert received.input_name == "frames"


async def test_a_query_finds_the_classifier_module_twin(sim: Fleet) -> None:
    async with module_client(sim, "classifier") as client:
        await client.patch_twin_reported_properties({"state": "running"})
    rm = await registry_manager(sim)
    result = await asyncio.to_thread(
        rm.query_iot_hub,
        QuerySpecification(query="SELECT * FROM devices.modules WHERE moduleId = 'classifier'"),
    )
    [twin] = result.items
    assert (twin.device_id, twin.module_id) == (DEVICE, "classifier")
    assert twin.properties.reported["state"] == "running"
