# mypy: disallow-untyped-calls=False
"""The service REST API driven by the real azure-iot-hub 2.7.0 SDK over real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from azure.iot.hub.models import (
    CloudToDeviceMethod,
    Configuration,
    ConfigurationContent,
    QuerySpecification,
    Twin,
    TwinProperties,
)
from msrest.exceptions import HttpOperationError

from simulator.certs import ensure_certificates
from simulator.hub.identity import DeviceFields, ModuleFields, new_key
from simulator.hub.service_api import ServiceApi
from simulator.hub.state import HubState
from simulator.hub.twins import TwinStore
from simulator.jsondoc import JsonObject, JsonValue
from simulator.methods import LoopbackTransport, MethodCalls, in_process_dispatcher
from tests.integration.e2e_support import template_manifest

D, M = "dev1", "classifier"


def deployment() -> dict[str, Any]:
    """A whole, valid deployment whose classifier desired properties are ``threshold``."""
    content: dict[str, Any] = template_manifest()["modulesContent"]
    content[M] = {"properties.desired": {"threshold": 0.7}}
    return content


@dataclass
class InProcessDevice:
    """A ``DeviceEndpoint`` whose modules are Python handlers (``LoopbackTransport``)."""

    methods: MethodCalls
    transport: LoopbackTransport

    def is_connected(self, module_id: str) -> bool:
        return self.transport.is_reachable(f"{D}/{module_id}")


@dataclass
class Hub:
    api: ServiceApi
    state: HubState
    transport: LoopbackTransport
    connection_string: str
    desired_seen: list[JsonObject] = field(default_factory=list)

    @property
    def twins(self) -> TwinStore:
        return self.state.twins

    async def registry_manager(self) -> Any:
        return await asyncio.to_thread(
            IoTHubRegistryManager.from_connection_string, self.connection_string
        )

    async def configuration_manager(self) -> Any:
        return await asyncio.to_thread(
            IoTHubConfigurationManager.from_connection_string, self.connection_string
        )


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    state = HubState.load(tmp_path, "sim-hub.local")
    state.create_device(D, DeviceFields(edge=True))
    state.create_module(D, M, ModuleFields(managed_by="IotEdge"))
    certs = ensure_certificates(tmp_path / "certs", ["127.0.0.1"])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_cert_path))
    calls, transport = in_process_dispatcher()
    detach = state.presence.attach(D, InProcessDevice(calls, transport))
    api = ServiceApi(state)
    await api.start("127.0.0.1", certs.server_ssl_context())
    hub = Hub(api, state, transport, api.connection_string())
    state.twins.add_desired_listener(lambda _d, _m, patch: hub.desired_seen.append(patch))
    yield hub
    await api.stop()
    await transport.close()
    detach()
    state.close()


def status_of(error: HttpOperationError) -> int:
    return int(error.response.status_code)


async def test_get_module_twin_returns_the_sdk_twin_model(hub: Hub) -> None:
    hub.twins.patch_reported(D, M, {"model": "v1"})
    rm = await hub.registry_manager()
    twin = await asyncio.to_thread(rm.get_module_twin, D, M)
    assert (twin.device_id, twin.module_id) == (D, M)
    assert twin.properties.reported["model"] == "v1"
    assert twin.properties.desired["$version"] == 1
    assert twin.connection_state == "Disconnected"


async def test_update_module_twin_with_its_etag_patches_desired_and_notifies(hub: Hub) -> None:
    rm = await hub.registry_manager()
    twin = await asyncio.to_thread(rm.get_module_twin, D, M)
    patch = Twin(tags={"site": "lab"}, properties=TwinProperties(desired={"threshold": 0.5}))
    updated = await asyncio.to_thread(rm.update_module_twin, D, M, patch, twin.etag)
    assert updated.properties.desired["threshold"] == 0.5
    assert updated.tags == {"site": "lab"}
    assert hub.desired_seen == [{"threshold": 0.5, "$version": 2}]


async def test_update_with_a_stale_etag_is_a_412(hub: Hub) -> None:
    rm = await hub.registry_manager()
    stale = (await asyncio.to_thread(rm.get_module_twin, D, M)).etag
    hub.twins.update(D, M, desired_patch={"a": 1})
    patch = Twin(properties=TwinProperties(desired={"a": 2}))
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.update_module_twin, D, M, patch, stale)
    assert status_of(caught.value) == 412


async def test_replace_module_twin_replaces_desired_and_tags(hub: Hub) -> None:
    hub.twins.update(D, M, desired_patch={"old": 1}, tags_patch={"old": "x"})
    rm = await hub.registry_manager()
    twin = await asyncio.to_thread(rm.get_module_twin, D, M)
    twin.tags = {"new": "y"}
    twin.properties = TwinProperties(desired={"new": 2})
    replaced = await asyncio.to_thread(rm.replace_module_twin, D, M, twin)
    assert replaced.tags == {"new": "y"}
    assert "old" not in replaced.properties.desired
    assert hub.desired_seen[-1] == {"old": None, "new": 2, "$version": 3}


async def test_a_twin_of_an_unknown_module_is_a_404(hub: Hub) -> None:
    rm = await hub.registry_manager()
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.get_module_twin, D, "ghost")
    assert status_of(caught.value) == 404
    assert "ModuleNotFound" in caught.value.response.text


async def test_invoking_a_method_returns_the_modules_answer(hub: Hub) -> None:
    async def handler(name: str, payload: JsonValue) -> tuple[int, JsonValue]:
        return 200, {"echo": payload, "name": name}

    hub.transport.register(D, M, handler)
    rm = await hub.registry_manager()
    request = CloudToDeviceMethod(
        method_name="reload_model", payload={"v": 2}, response_timeout_in_seconds=5
    )
    result = await asyncio.to_thread(rm.invoke_device_module_method, D, M, request)
    assert result.status == 200
    assert result.payload == {"echo": {"v": 2}, "name": "reload_model"}


async def test_invoking_a_method_on_a_module_that_is_not_connected_is_a_404(hub: Hub) -> None:
    rm = await hub.registry_manager()
    request = CloudToDeviceMethod(method_name="ping", response_timeout_in_seconds=5)
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.invoke_device_module_method, D, M, request)
    assert status_of(caught.value) == 404
    assert caught.value.response.headers["iothub-errorcode"] == "DeviceNotOnline"


async def test_a_method_the_module_does_not_answer_in_time_is_a_504(hub: Hub) -> None:
    async def slow(_name: str, _payload: JsonValue) -> tuple[int, JsonValue]:
        await asyncio.sleep(10)
        return 200, None

    hub.transport.register(D, M, slow)
    rm = await hub.registry_manager()
    request = CloudToDeviceMethod(method_name="ping", response_timeout_in_seconds=1)
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.invoke_device_module_method, D, M, request)
    assert status_of(caught.value) == 504


async def test_get_modules_lists_identities_with_their_keys(hub: Hub) -> None:
    rm = await hub.registry_manager()
    modules = await asyncio.to_thread(rm.get_modules, D)
    by_id = {m.module_id: m for m in modules}
    assert set(by_id) == {"$edgeAgent", "$edgeHub", M}
    assert by_id[M].authentication.symmetric_key.primary_key
    assert by_id[M].managed_by == "IotEdge"


async def test_configurations_can_be_created_read_listed_and_deleted(hub: Hub) -> None:
    cm = await hub.configuration_manager()
    config = Configuration(
        id="classifier-v1",
        content=ConfigurationContent(modules_content=deployment()),
        target_condition="tags.site='lab'",
        priority=10,
        labels={"app": "classifier"},
    )
    created = await asyncio.to_thread(cm.create_configuration, config)
    assert created.etag
    fetched = await asyncio.to_thread(cm.get_configuration, "classifier-v1")
    assert fetched.content.modules_content[M] == deployment()[M]
    assert fetched.created_time_utc is not None
    listed = await asyncio.to_thread(cm.get_configurations, 10)
    assert [c.id for c in listed] == ["classifier-v1"]
    await asyncio.to_thread(cm.delete_configuration, "classifier-v1")
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(cm.get_configuration, "classifier-v1")
    assert status_of(caught.value) == 404


async def test_applying_configuration_content_sets_every_twin_it_names(hub: Hub) -> None:
    cm = await hub.configuration_manager()
    content = ConfigurationContent(modules_content=deployment())
    await asyncio.to_thread(cm.apply_configuration_on_edge_device, D, content)
    assert hub.twins.get_for_module(D, M)["desired"] == {"threshold": 0.7, "$version": 2}
    agent = hub.twins.desired(D, "$edgeAgent")
    assert agent == deployment()["$edgeAgent"]["properties.desired"]


async def test_applying_content_without_the_system_modules_is_a_400(hub: Hub) -> None:
    cm = await hub.configuration_manager()
    content = ConfigurationContent(modules_content={M: deployment()[M]})
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(cm.apply_configuration_on_edge_device, D, content)
    assert status_of(caught.value) == 400
    assert hub.twins.desired_version(D, M) == 1


async def test_a_query_returns_the_matching_module_twins(hub: Hub) -> None:
    hub.twins.patch_reported(D, M, {"model": {"version": "v2"}})
    rm = await hub.registry_manager()
    query = QuerySpecification(
        query="SELECT * FROM devices.modules WHERE properties.reported.model.version = 'v2'"
    )
    result = await asyncio.to_thread(rm.query_iot_hub, query)
    assert [twin.module_id for twin in result.items] == [M]
    assert result.type == "twin"
    everything = await asyncio.to_thread(
        rm.query_iot_hub, QuerySpecification(query="SELECT * FROM devices.modules"), None, 2
    )
    assert len(everything.items) == 2
    assert everything.continuation_token == "2"  # $edgeAgent, $edgeHub, classifier


async def test_a_malformed_query_is_a_400(hub: Hub) -> None:
    rm = await hub.registry_manager()
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(
            rm.query_iot_hub, QuerySpecification(query="SELECT * FROM devices.modules WHERE")
        )
    assert status_of(caught.value) == 400


async def test_a_connection_string_with_the_wrong_key_is_a_401(hub: Hub) -> None:
    wrong = hub.connection_string.rsplit("SharedAccessKey=", 1)[0] + "SharedAccessKey=" + new_key()
    rm = await asyncio.to_thread(IoTHubRegistryManager.from_connection_string, wrong)
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.get_module_twin, D, M)
    assert status_of(caught.value) == 401
    assert caught.value.response.json()["Message"].startswith("ErrorCode:IotHubUnauthorizedAccess;")


async def test_devices_are_created_read_updated_listed_and_deleted(hub: Hub) -> None:
    rm = await hub.registry_manager()
    key = new_key()
    created = await asyncio.to_thread(
        rm.create_device_with_sas, "gateway-2", key, None, "enabled", True
    )
    with pytest.raises(HttpOperationError) as duplicate:
        await asyncio.to_thread(rm.create_device_with_sas, "gateway-2", None, None, "enabled")
    updated = await asyncio.to_thread(
        rm.update_device_with_sas, "gateway-2", created.etag, None, None, "disabled", True
    )
    listed = await asyncio.to_thread(rm.get_devices)
    modules = await asyncio.to_thread(rm.get_modules, "gateway-2")
    with pytest.raises(HttpOperationError) as stale:
        await asyncio.to_thread(rm.delete_device, "gateway-2", created.etag)
    await asyncio.to_thread(rm.delete_device, "gateway-2", updated.etag)
    with pytest.raises(HttpOperationError) as gone:
        await asyncio.to_thread(rm.get_device, "gateway-2")
    assert created.capabilities.iot_edge is True
    assert created.authentication.symmetric_key.primary_key == key
    assert status_of(duplicate.value) == 409
    assert (updated.status, updated.authentication.symmetric_key.primary_key) == ("disabled", key)
    assert sorted(d.device_id for d in listed) == [D, "gateway-2"]
    assert sorted(m.module_id for m in modules) == ["$edgeAgent", "$edgeHub"]
    assert status_of(stale.value) == 412
    assert status_of(gone.value) == 404
    assert not hub.twins.exists("gateway-2", "")


async def test_module_identities_are_created_once_and_deleted_with_their_twin(hub: Hub) -> None:
    rm = await hub.registry_manager()
    created = await asyncio.to_thread(rm.create_module_with_sas, D, "mine", None, None, None)
    with pytest.raises(HttpOperationError) as duplicate:
        await asyncio.to_thread(rm.create_module_with_sas, D, "mine", None, None, None)
    rotated = await asyncio.to_thread(
        rm.update_module_with_sas, D, "mine", None, created.etag, new_key(), new_key()
    )
    await asyncio.to_thread(rm.delete_module, D, "mine")
    with pytest.raises(HttpOperationError) as system:
        await asyncio.to_thread(rm.delete_module, D, "$edgeAgent")
    assert created.authentication.symmetric_key.primary_key
    assert status_of(duplicate.value) == 409
    assert "ModuleAlreadyExistsOnDevice" in duplicate.value.response.text
    assert rotated.authentication.symmetric_key.primary_key != (
        created.authentication.symmetric_key.primary_key
    )
    assert not hub.twins.exists(D, "mine")
    assert status_of(system.value) == 400


async def test_a_device_that_runs_in_the_simulator_cannot_be_deleted(hub: Hub) -> None:
    rm = await hub.registry_manager()
    with pytest.raises(HttpOperationError) as caught:
        await asyncio.to_thread(rm.delete_device, D)
    assert status_of(caught.value) == 400
    assert "runs in this simulator" in caught.value.response.text


async def test_device_twins_carry_tags_and_capabilities(hub: Hub) -> None:
    rm = await hub.registry_manager()
    twin = await asyncio.to_thread(rm.get_twin, D)
    patched = await asyncio.to_thread(rm.update_twin, D, Twin(tags={"site": "lab"}), twin.etag)
    with pytest.raises(HttpOperationError) as stale:
        await asyncio.to_thread(rm.update_twin, D, Twin(tags={"site": "x"}), twin.etag)
    assert (twin.device_id, twin.module_id, twin.capabilities.iot_edge) == (D, None, True)
    assert twin.connection_state == "Connected"  # it runs (in-process) here
    assert patched.tags == {"site": "lab"}
    assert status_of(stale.value) == 412
