"""Which automatic deployments IoT Hub applies to a device, and what its twins then hold."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.deployment.layering import compose_content, is_base, layer_content_problems
from simulator.errors import HubError
from simulator.hub.identity import DeviceFields
from simulator.hub.state import HubState
from simulator.hub.upstream import UpstreamStore
from simulator.jsondoc import JsonObject

AGENT = {
    "schemaVersion": "1.1",
    "runtime": {"type": "docker", "settings": {}},
    "systemModules": {
        "edgeAgent": {"type": "docker", "settings": {"image": "agent:1.5"}},
        "edgeHub": {
            "type": "docker",
            "status": "running",
            "restartPolicy": "always",
            "settings": {"image": "hub:1.5"},
        },
    },
    "modules": {},
}
HUB = {"schemaVersion": "1.2", "routes": {}}


def module(image: str) -> dict[str, Any]:
    return {
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "settings": {"image": image},
    }


def base(**modules: str) -> dict[str, Any]:
    agent = copy.deepcopy(AGENT)
    agent["modules"] = {name: module(image) for name, image in modules.items()}
    return {
        "$edgeAgent": {"properties.desired": agent},
        "$edgeHub": {"properties.desired": copy.deepcopy(HUB)},
        "app": {"properties.desired": {"level": 1, "keep": True}},
    }


@pytest.fixture
def state(tmp_path: Path) -> Iterator[HubState]:
    hub = HubState.in_memory("hub.local", UpstreamStore.open(tmp_path / "upstream.sqlite"))
    hub.create_device("d1", DeviceFields(), {"site": "a"})
    hub.create_device("d2", DeviceFields(), {"site": "b"})
    yield hub
    hub.close()


def deploy(
    state: HubState, config_id: str, content: JsonObject, target: str, priority: int
) -> None:
    body = {"content": {"modulesContent": content}, "targetCondition": target, "priority": priority}
    state.put_configuration(config_id, body, None)


def desired(state: HubState, device_id: str, module_id: str) -> dict[str, Any]:
    return dict(state.twins.desired(device_id, module_id))


def modules_of(state: HubState, device_id: str) -> list[str]:
    modules = state.twins.desired(device_id, "$edgeAgent").get("modules") or {}
    assert isinstance(modules, dict)
    return sorted(modules)


def statuses(state: HubState, device_id: str) -> dict[str, Any]:
    configurations: dict[str, Any] = state.twins.configurations(device_id, "$edgeAgent")
    return {k: v["status"] for k, v in configurations.items()}


def test_the_highest_priority_base_that_targets_a_device_applies(state: HubState) -> None:
    deploy(state, "low", base(app="app:1"), "*", 1)
    deploy(state, "high", base(app="app:2"), "tags.site='a'", 5)
    assert modules_of(state, "d1") == ["app"]
    agent = desired(state, "d1", "$edgeAgent")
    assert agent["modules"]["app"]["settings"]["image"] == "app:2"
    assert statuses(state, "d1") == {"low": "Targeted", "high": "Applied"}
    assert statuses(state, "d2") == {"low": "Applied"}


def test_between_bases_of_one_priority_the_most_recently_created_applies(
    state: HubState,
) -> None:
    deploy(state, "first", base(app="app:1"), "*", 3)
    deploy(state, "second", base(app="app:2"), "*", 3)
    agent = desired(state, "d1", "$edgeAgent")
    assert agent["modules"]["app"]["settings"]["image"] == "app:2"


def test_layers_apply_over_the_base_in_priority_order_and_only_above_it(state: HubState) -> None:
    deploy(state, "base", base(app="app:1"), "*", 5)
    deploy(state, "ten", {"app": {"properties.desired.level": 10}}, "*", 10)
    deploy(state, "twenty", {"app": {"properties.desired.level": 20}}, "tags.site='a'", 20)
    deploy(state, "under", {"app": {"properties.desired.level": 4}}, "*", 5)
    assert state.twins.desired("d1", "app") == {"level": 20, "keep": True}
    assert state.twins.desired("d2", "app") == {"level": 10, "keep": True}
    assert statuses(state, "d1") == {
        "base": "Applied",
        "ten": "Applied",
        "twenty": "Applied",
        "under": "Targeted",
    }


def test_a_layer_without_a_base_is_only_targeted(state: HubState) -> None:
    deploy(state, "lonely", {"app": {"properties.desired.level": 2}}, "*", 10)
    assert state.twins.desired("d1", "app") == {}
    assert statuses(state, "d1") == {"lonely": "Targeted"}


def test_a_tag_change_moves_a_device_to_the_deployments_that_now_target_it(
    state: HubState,
) -> None:
    deploy(state, "base", base(app="app:1"), "*", 0)
    deploy(
        state,
        "extra",
        {"$edgeAgent": {"properties.desired.modules.extra": module("x:1")}},
        "tags.site='b'",
        1,
    )
    assert modules_of(state, "d1") == ["app"]
    state.twins.update("d1", "", tags_patch={"site": "b"})
    assert modules_of(state, "d1") == ["app", "extra"]


def test_an_untargeted_device_keeps_what_it_was_given(state: HubState) -> None:
    deploy(state, "site-a", base(app="app:1"), "tags.site='a'", 0)
    version = state.twins.desired_version("d1", "$edgeAgent")
    state.twins.update("d1", "", tags_patch={"site": "c"})
    assert modules_of(state, "d1") == ["app"]
    assert state.twins.desired_version("d1", "$edgeAgent") == version
    assert statuses(state, "d1") == {}


def test_twins_are_written_only_when_the_applied_deployments_change(state: HubState) -> None:
    deploy(state, "base", base(app="app:1"), "*", 0)
    state.twins.update("d1", "app", desired_patch={"pushed": "directly"})
    deploy(state, "elsewhere", {"app": {"properties.desired.level": 3}}, "tags.site='b'", 1)
    state.twins.update("d1", "", tags_patch={"floor": "2"})  # still targeted by the same
    assert desired(state, "d1", "app")["pushed"] == "directly"


def test_a_base_that_edge_agent_could_not_read_is_refused_when_created(
    state: HubState,
) -> None:
    broken = base(app="app:1")
    del broken["$edgeAgent"]["properties.desired"]["runtime"]
    with pytest.raises(HubError) as caught:
        deploy(state, "broken", broken, "*", 0)
    assert caught.value.status == 400
    assert state.configurations.ids() == []


def test_the_system_metrics_count_targeted_and_applied_devices(state: HubState) -> None:
    deploy(state, "base", base(app="app:1"), "tags.site='a'", 0)
    described: dict[str, Any] = state.configuration("base")
    results = described["systemMetrics"]["results"]
    assert results["targetedCount"] == 1 and results["appliedCount"] == 1
    assert results["reportedSuccessfulCount"] == 0  # nothing runs the device here


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"$edgeAgent": {"properties.desired.runtime.type": "x"}}, "modules.<name>"),
        ({"$edgeHub": {"properties.desired.routes": {}}}, "routes.<name>"),
        ({"app": {"level": 1}}, "below properties.desired"),
    ],
)
def test_a_layer_may_set_only_paths_below_properties_desired(
    content: JsonObject, problem: str
) -> None:
    assert not is_base(content)
    [found] = layer_content_problems(content)
    assert problem in found


def test_a_layer_may_replace_a_modules_whole_desired_properties() -> None:
    layer: JsonObject = {"app": {"properties.desired": {"only": 1}}}
    assert layer_content_problems(layer) == []
    assert compose_content(base(app="app:1"), [layer])["app"] == {"properties.desired": {"only": 1}}
