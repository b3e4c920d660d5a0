# mypy: disallow-untyped-calls=False
"""The workload API, driven by azure-iot-device's own edge HSM client and module factory."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from azure.iot.device import IoTHubModuleClient
from azure.iot.device.iothub.edge_hsm import IoTEdgeError, IoTEdgeHsm

from simulator.certs import CertificateSet, ensure_certificates
from simulator.device.workload_api import WorkloadApi
from simulator.hub.device_link import DeviceLink
from simulator.hub.identity import DeviceFields, ModuleIdentity
from simulator.hub.registry import Registry
from simulator.hub.state import HubState
from simulator.sas import sign

API_VERSION = "2022-08-03"
HUB = "sim-hub.local"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="wl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def workload(
    short_dir: Path,
) -> AsyncIterator[tuple[WorkloadApi, Registry, CertificateSet, str, str]]:
    state = HubState.load(short_dir, HUB)
    registry = state.registry
    state.create_device("dev1", DeviceFields(edge=True))
    registry.add_module("dev1", "classifier")
    certs = ensure_certificates(short_dir / "certs", ["127.0.0.1"])
    api = WorkloadApi(DeviceLink(state, "dev1"), lambda: certs.ca_pem)
    unix_uri = await api.start_unix(short_dir / "workload.sock")
    http_uri = await api.start_tcp("127.0.0.1")
    yield api, registry, certs, unix_uri, http_uri
    await api.stop()
    state.close()


def module(registry: Registry, module_id: str = "classifier") -> ModuleIdentity:
    found = registry.get_module("dev1", module_id)
    assert found is not None
    return found


@pytest.mark.parametrize("transport", ["unix", "http"])
async def test_the_sdk_hsm_gets_the_trust_bundle_and_a_correct_signature(
    workload, transport: str
) -> None:
    _, registry, certs, unix_uri, http_uri = workload
    identity = module(registry)
    uri = unix_uri if transport == "unix" else http_uri
    hsm = IoTEdgeHsm("classifier", identity.generation_id, uri, API_VERSION)
    assert await asyncio.to_thread(hsm.get_certificate) == certs.ca_pem
    digest = await asyncio.to_thread(hsm.sign, "sim-hub.local%2Fdevices%2Fdev1\n1700000000")
    assert digest == sign(identity.primary_key, "sim-hub.local%2Fdevices%2Fdev1\n1700000000")


async def test_a_system_module_id_with_a_dollar_sign_can_sign(workload) -> None:
    _, registry, _, unix_uri, _ = workload
    identity = module(registry, "$edgeHub")
    hsm = IoTEdgeHsm("$edgeHub", identity.generation_id, unix_uri, API_VERSION)
    assert await asyncio.to_thread(hsm.sign, "x") == sign(identity.primary_key, "x")


@pytest.mark.parametrize(("module_id", "generation"), [("classifier", "stale"), ("ghost", "any")])
async def test_an_unknown_module_or_stale_generation_cannot_sign(
    workload, module_id: str, generation: str
) -> None:
    _, _, _, unix_uri, _ = workload
    hsm = IoTEdgeHsm(module_id, generation, unix_uri, API_VERSION)
    with pytest.raises(IoTEdgeError) as caught:
        await asyncio.to_thread(hsm.sign, "x")
    assert caught.value.__cause__ is not None
    assert "404" in str(caught.value.__cause__)


@pytest.mark.parametrize(
    ("body", "query"),
    [
        ('{"keyId": "primary", "algo": "HMACSHA1", "data": "eA=="}', f"?api-version={API_VERSION}"),
        (
            '{"keyId": "tertiary", "algo": "HMACSHA256", "data": "eA=="}',
            f"?api-version={API_VERSION}",
        ),
        (
            '{"keyId": "primary", "algo": "HMACSHA256", "data": "not base64!"}',
            f"?api-version={API_VERSION}",
        ),
        ("not json", f"?api-version={API_VERSION}"),
        ('{"keyId": "primary", "algo": "HMACSHA256", "data": "eA=="}', ""),
    ],
)
async def test_bad_sign_requests_are_a_400_with_a_message(workload, body: str, query: str) -> None:
    _, registry, _, _, http_uri = workload
    url = f"{http_uri}modules/classifier/genid/{module(registry).generation_id}/sign{query}"
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
        assert response.status == 400
        assert "message" in await response.json()


async def test_the_module_client_can_be_created_from_the_edge_environment(
    workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, registry, _, unix_uri, _ = workload
    identity = module(registry)
    for name, value in {
        "IOTEDGE_IOTHUBHOSTNAME": HUB,
        "IOTEDGE_DEVICEID": "dev1",
        "IOTEDGE_MODULEID": "classifier",
        "IOTEDGE_GATEWAYHOSTNAME": "127.0.0.1",
        "IOTEDGE_MODULEGENERATIONID": identity.generation_id,
        "IOTEDGE_WORKLOADURI": unix_uri,
        "IOTEDGE_APIVERSION": API_VERSION,
    }.items():
        monkeypatch.setenv(name, value)
    client = await asyncio.to_thread(IoTHubModuleClient.create_from_edge_environment)
    try:
        # The client signed its first SAS token through the workload API; it must verify.
        # (A private attribute, read only here: the SDK is pinned to 2.14.0.)
        token = str(client._mqtt_pipeline.pipeline_configuration.sastoken)
        registry.verify_module_token("dev1", "classifier", token)
    finally:
        await asyncio.to_thread(client.shutdown)
