# mypy: disallow-untyped-calls=False
"""Automatic deployments on a fleet of three devices, through the real azure-iot-hub SDK:
device twin tags and queries, layered deployments applied by target condition and priority,
re-evaluated when a tag changes, IoT Hub's deployment metrics, and what ``$edgeAgent`` reports.

Modules are processes that only stay up (or only crash): what is under test is which devices
run which modules and what the twins say about it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.iot.hub.models import QuerySpecification, Twin

from simulator.fleet import Fleet
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    configuration_manager,
    fleet_settings,
    registry_manager,
    running_fleet,
    short_state_dir,
    trust_simulator,
)
from tests.integration.fleet_support import (
    CRASHING,
    IDLE,
    agent_reported,
    base_manifest,
    call,
    deployment,
    desired,
    devices,
    layer,
    sidecar_module,
    wait_status,
)

COMMANDS = {"classifier": IDLE, "sidecar": IDLE, "crasher": CRASHING}


@pytest.fixture
async def fleet(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    state_dir = short_state_dir()
    specs = devices({"site": "a", "ring": "1"}, {"site": "a"}, {"site": "b"})
    try:
        async with running_fleet(fleet_settings(state_dir, base_manifest(), specs), COMMANDS) as f:
            trust_simulator(monkeypatch, f)
            yield f
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def top_k(fleet: Fleet, device_id: str) -> Any:
    return (desired(fleet, device_id, "classifier").get("inference") or {}).get("top_k")


def sidecar_layer(config_id: str = "sidecar", condition: str = "tags.site='a'") -> Any:
    content = {
        "$edgeAgent": {"properties.desired.modules.sidecar": sidecar_module()},
        "classifier": {"properties.desired.inference.top_k": 5},
    }
    running = (
        "SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent' "
        "AND properties.reported.modules.sidecar.runtimeStatus = 'running'"
    )
    return layer(config_id, condition, 10, content, {"sidecarRunning": running})


async def test_device_twins_hold_tags_that_queries_select_devices_by(fleet: Fleet) -> None:
    rm = await registry_manager(fleet)
    twin = await call(rm.get_twin, "edge-3")
    updated = await call(rm.update_twin, "edge-3", Twin(tags={"ring": "2"}), twin.etag)
    replaced_base = await call(rm.get_twin, "edge-2")
    replaced = await call(rm.replace_twin, "edge-2", Twin(tags={"site": "c"}), replaced_base.etag)
    site_a = await call(
        rm.query_iot_hub, QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'a'")
    )
    edge = await call(
        rm.query_iot_hub,
        QuerySpecification(
            query="SELECT deviceId FROM devices WHERE capabilities.iotEdge = true AND tags.ring IN ['1', '2']"
        ),
    )
    assert twin.tags == {"site": "b"} and twin.capabilities.iot_edge is True
    assert updated.tags == {"site": "b", "ring": "2"} and updated.version > twin.version
    assert replaced.tags == {"site": "c"}
    assert [t.device_id for t in site_a.items] == ["edge-1"]
    assert sorted(t.device_id for t in edge.items) == ["edge-1", "edge-3"]
    assert edge.items[0].tags is None  # a projection returns only what it selects


async def test_a_layered_deployment_applies_by_target_condition_and_priority(
    fleet: Fleet,
) -> None:
    cm = await configuration_manager(fleet)
    await call(cm.create_configuration, sidecar_layer())
    top7 = {"classifier": {"properties.desired.inference.top_k": 7}}
    await call(cm.create_configuration, layer("top7", "tags.ring='1'", 20, top7))
    await wait_status(fleet, "edge-1", "sidecar", "running")
    await wait_status(fleet, "edge-2", "sidecar", "running")
    await fleet.settled()
    assert [top_k(fleet, d) for d in ("edge-1", "edge-2", "edge-3")] == [7, 5, 3]
    # Paths are written over the base's desired properties, which stay otherwise.
    assert desired(fleet, "edge-1", "classifier")["inference"] == {
        "top_k": 7,
        "confidence_threshold": 0.0,
    }
    assert "sidecar" not in fleet.device("edge-3").runtime.module_reports()
    statuses = fleet.state.twins.configurations("edge-1", "$edgeAgent")
    assert statuses == {
        "simulator-base": {"status": "Applied"},
        "sidecar": {"status": "Applied"},
        "top7": {"status": "Applied"},
    }


async def test_a_tag_change_re_evaluates_which_deployments_a_device_gets(fleet: Fleet) -> None:
    cm = await configuration_manager(fleet)
    rm = await registry_manager(fleet)
    await call(cm.create_configuration, sidecar_layer())
    await wait_status(fleet, "edge-1", "sidecar", "running")
    joining = await call(rm.get_twin, "edge-3")
    await call(rm.update_twin, "edge-3", Twin(tags={"site": "a"}), joining.etag)
    leaving = await call(rm.get_twin, "edge-1")
    await call(rm.update_twin, "edge-1", Twin(tags={"site": "b"}), leaving.etag)
    await wait_status(fleet, "edge-3", "sidecar", "running")
    await wait_status(fleet, "edge-1", "sidecar", None)
    await fleet.settled()
    assert (top_k(fleet, "edge-1"), top_k(fleet, "edge-3")) == (3, 5)
    assert fleet.state.registry.get_module("edge-1", "sidecar") is None  # edgeAgent removed it


async def test_deployment_metrics_are_iot_hubs_queries_over_the_twins(fleet: Fleet) -> None:
    cm = await configuration_manager(fleet)
    await call(cm.create_configuration, sidecar_layer())
    # Not above the base's priority (0): IoT Hub only records it as targeting every device.
    below = {"classifier": {"properties.desired.inference.top_k": 9}}
    await call(cm.create_configuration, layer("below-base", "*", 0, below))
    for device in ("edge-1", "edge-2"):
        await wait_status(fleet, device, "sidecar", "running")

    def results() -> dict[str, int]:
        described = deployment(fleet, "sidecar")
        return {**described["systemMetrics"]["results"], **described["metrics"]["results"]}

    expected = {
        "targetedCount": 2,
        "appliedCount": 2,
        "reportedSuccessfulCount": 2,
        "reportedFailedCount": 0,
        "sidecarRunning": 2,
    }
    await eventually(lambda: results() == expected, 30, f"metrics {expected}")
    fetched = await call(cm.get_configuration, "sidecar")
    below_base = await call(cm.get_configuration, "below-base")
    rm = await registry_manager(fleet)
    targeted_only = await call(
        rm.query_iot_hub,
        QuerySpecification(
            query="SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent' "
            "AND configurations.[[below-base]].status = 'Targeted'"
        ),
    )
    assert fetched.system_metrics.results == {
        k: v for k, v in expected.items() if k != "sidecarRunning"
    }
    assert fetched.metrics.results == {"sidecarRunning": 2}
    assert (
        "configurations.[[sidecar]].status = 'Applied'"
        in fetched.system_metrics.queries["appliedCount"]
    )
    assert below_base.system_metrics.results["targetedCount"] == 3
    assert below_base.system_metrics.results["appliedCount"] == 0
    assert len(targeted_only.items) == 3
    assert top_k(fleet, "edge-3") == 3


async def test_edge_agent_reports_each_modules_runtime_status_and_the_deployment_status(
    fleet: Fleet,
) -> None:
    await fleet.settled()
    desired_version = fleet.state.twins.desired_version("edge-2", "$edgeAgent")
    steady = agent_reported(fleet, "edge-2")
    crasher = dict(sidecar_module(), restartPolicy="never")
    cm = await configuration_manager(fleet)
    content = {"$edgeAgent": {"properties.desired.modules.crasher": crasher}}
    await call(cm.create_configuration, layer("crasher", "tags.site='a'", 10, content))
    await wait_status(fleet, "edge-2", "crasher", "failed")
    crashed = agent_reported(fleet, "edge-2")["modules"]
    assert steady["lastDesiredVersion"] == desired_version
    assert steady["lastDesiredStatus"] == {"code": 200, "description": ""}
    classifier = steady["modules"]["classifier"]
    assert (classifier["runtimeStatus"], classifier["status"], classifier["version"]) == (
        "running",
        "running",
        "1.0",
    )
    agent = base_manifest()["modulesContent"]["$edgeAgent"]["properties.desired"]
    assert classifier["settings"]["image"] == agent["modules"]["classifier"]["settings"]["image"]
    assert crashed["crasher"]["exitCode"] == 3
    assert crashed["classifier"]["runtimeStatus"] == "running"


async def test_a_layer_that_breaks_the_deployment_is_reported_failed_and_changes_nothing(
    fleet: Fleet,
) -> None:
    cm = await configuration_manager(fleet)
    broken = {"$edgeAgent": {"properties.desired.modules.broken": {"type": "docker"}}}
    await call(cm.create_configuration, layer("broken", "tags.site='b'", 10, broken))

    def status() -> Any:
        reported = agent_reported(fleet, "edge-3")
        applied = reported.get("lastDesiredVersion") == fleet.state.twins.desired_version(
            "edge-3", "$edgeAgent"
        )
        return applied and reported["lastDesiredStatus"]

    await eventually(lambda: status() and status()["code"] == 400, 30, "edge-3 reporting 400")
    described = deployment(fleet, "broken")["systemMetrics"]["results"]
    assert "settings" in status()["description"]
    assert (described["reportedSuccessfulCount"], described["reportedFailedCount"]) == (0, 1)
    assert fleet.device("edge-3").runtime.module_reports()["classifier"].runtime_status == "running"
