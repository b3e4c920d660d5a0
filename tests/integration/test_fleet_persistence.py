# mypy: disallow-untyped-calls=False
"""The hub's state across a restart: a new fleet process on the same state directory keeps
its registry, twins (values and versions), deployments and service port, so saved connection
strings keep working, and does not put its startup deployment back over later ones.
Driven through the real azure-iot-hub and azure-iot-device SDKs.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from azure.iot.hub.models import ConfigurationContent, Twin, TwinProperties

from simulator.errors import SimulatorError
from simulator.fleet import Fleet, FleetSettings
from simulator.local.startup import base_only
from tests.integration.e2e_support import (
    SDK_SOCKET_LEAK,
    fleet_settings,
    module_client,
    running_fleet,
    short_state_dir,
    trust_simulator,
)
from tests.integration.fleet_support import (
    IDLE,
    base_manifest,
    call,
    devices,
    layer,
    sidecar_module,
    wait_status,
)

pytestmark = SDK_SOCKET_LEAK
COMMANDS = {"classifier": IDLE, "sidecar": IDLE}


@pytest.fixture
def settings() -> Iterator[FleetSettings]:
    state_dir = short_state_dir()
    yield fleet_settings(state_dir, base_manifest(), devices({"site": "a"}, {"site": "b"}))
    shutil.rmtree(state_dir, ignore_errors=True)


def managers(connection_string: str) -> tuple[Any, Any]:
    return (
        IoTHubRegistryManager.from_connection_string(connection_string),
        IoTHubConfigurationManager.from_connection_string(connection_string),
    )


def later_deployment() -> dict[str, Any]:
    """What an operator deploys to edge-2 after the start: the base plus a sidecar."""
    content = copy.deepcopy(base_manifest()["modulesContent"])
    content["$edgeAgent"]["properties.desired"]["modules"]["sidecar"] = sidecar_module()
    return dict(content)


async def make_changes(fleet: Fleet) -> None:
    """Every kind of state an operator or a module creates, through the SDKs."""
    rm, cm = await call(managers, fleet.hub_connection_string())
    await call(rm.create_device_with_sas, "leaf-1", None, None, "enabled")
    leaf = await call(rm.get_twin, "leaf-1")
    await call(rm.update_twin, "leaf-1", Twin(tags={"floor": "2"}), leaf.etag)
    await call(rm.create_module_with_sas, "edge-1", "mine", None, None, None)
    patch = Twin(properties=TwinProperties(desired={"threshold": 0.5}))
    await call(rm.update_module_twin, "edge-1", "mine", patch, "*")
    async with module_client(fleet, "mine", device_id="edge-1") as client:
        await client.patch_twin_reported_properties({"seen": 1})
    content = {"$edgeAgent": {"properties.desired.modules.sidecar": sidecar_module()}}
    await call(cm.create_configuration, layer("sidecar", "tags.site='a'", 10, content))
    await call(
        cm.apply_configuration_on_edge_device,
        "edge-2",
        ConfigurationContent(modules_content=later_deployment()),
    )
    for device in ("edge-1", "edge-2"):
        await wait_status(fleet, device, "sidecar", "running")


def snapshot(fleet: Fleet) -> dict[str, Any]:
    twins = fleet.state.twins
    keys = [("leaf-1", ""), ("edge-1", "mine"), ("edge-2", "$edgeAgent"), ("edge-1", "classifier")]
    registry = fleet.state.registry
    documents: dict[tuple[str, str], Any] = {key: twins.get_for_service(*key) for key in keys}
    return {
        "twins": {key: doc["properties"]["desired"] for key, doc in documents.items()},
        "tags": twins.tags("leaf-1"),
        "reported": twins.reported("edge-1", "mine"),
        "devices": registry.devices(),
        "modules": registry.modules(),
        "configurations": fleet.state.configurations.list(),
    }


async def test_a_restarted_hub_keeps_its_state_its_port_and_the_deployments_made_since(
    settings: FleetSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_fleet(settings, COMMANDS) as fleet:
        trust_simulator(monkeypatch, fleet)
        saved = fleet.hub_connection_string()
        await make_changes(fleet)
        before = snapshot(fleet)
    async with running_fleet(settings, COMMANDS) as again:
        await again.settled()
        after = snapshot(again)
        rm, _ = await call(managers, saved)  # the connection string saved before the restart
        leaf = await call(rm.get_twin, "leaf-1")
        mine = await call(rm.get_module_twin, "edge-1", "mine")
        async with module_client(again, "mine", device_id="edge-1") as client:
            seen_by_module = await client.get_twin()
        await wait_status(again, "edge-2", "sidecar", "running")
        notes = again.notes
    assert again.hub_connection_string() == saved
    assert after == before
    assert leaf.tags == {"floor": "2"} and leaf.capabilities.iot_edge is False
    assert mine.properties.desired["threshold"] == 0.5
    assert seen_by_module["desired"]["$version"] == before["twins"][("edge-1", "mine")]["$version"]
    assert seen_by_module["reported"]["seen"] == 1
    assert notes == ()


async def test_a_remembered_service_port_that_is_taken_is_an_error_that_says_so(
    settings: FleetSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_fleet(settings, COMMANDS) as fleet:
        port = fleet.hub.service_api.port
    # Something else now listens there.
    server = await asyncio.start_server(lambda _r, w: w.close(), settings.address, port)
    try:
        with pytest.raises(SimulatorError, match=f"port {port} .* is taken"):
            async with running_fleet(settings, COMMANDS):
                pass
    finally:
        server.close()
        await server.wait_closed()


async def test_a_changed_startup_deployment_is_kept_unless_redeploy_is_asked(
    settings: FleetSettings,
) -> None:
    async with running_fleet(settings, COMMANDS):
        pass
    changed = base_manifest()
    agent = changed["modulesContent"]["$edgeAgent"]["properties.desired"]
    agent["modules"]["classifier"]["env"]["TOP_K"] = {"value": "5"}
    edited = replace(settings, startup=base_only(changed))
    async with running_fleet(edited, COMMANDS) as kept:
        kept_env = kept.device("edge-1").runtime.manifest
        kept_notes = kept.notes
    redeployed = replace(edited, redeploy_startup=True)
    async with running_fleet(redeployed, COMMANDS) as replaced:
        await replaced.settled()
        replaced_env = replaced.device("edge-1").runtime.manifest
    assert kept_env is not None and replaced_env is not None
    assert kept_env.modules["classifier"].env["TOP_K"] == "3"
    assert "simulator-base" in kept_notes[0] and "kept" in kept_notes[0]
    assert replaced_env.modules["classifier"].env["TOP_K"] == "5"
