# mypy: disallow-untyped-calls=False
"""UploadModuleLogs to a real Blob Storage emulator (Azurite) through a container SAS URL, and
GetTaskStatus following the upload by its correlationId, as the portal does."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from simulator.local.blob_storage import BlobEndpoint
from simulator.local.tool_env import blob_storage
from tests.integration.e2e_support import DEVICE, SDK_SOCKET_LEAK
from tests.integration.edge_agent_methods_support import Device, talking_device
from tests.integration.model_update_e2e_support import require_tools

pytestmark = [pytest.mark.slow, SDK_SOCKET_LEAK]

CONTAINER = "device-logs"
BLOB_SUFFIX = "/edge-device/talker-"  # after the hub's host name


@asynccontextmanager
async def device_and_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Device, BlobEndpoint, ContainerClient]]:
    async with talking_device(monkeypatch) as device, blob_storage(device.sim, 0) as server:
        if server is None:
            if require_tools():
                pytest.fail("Azurite is not installed (scripts/bootstrap.sh installs it)")
            pytest.skip("Azurite is not installed: run scripts/bootstrap.sh (needs npm)")
        service = BlobServiceClient.from_connection_string(server.endpoint.connection_string())
        container = await asyncio.to_thread(service.create_container, CONTAINER)
        yield device, server.endpoint, container


def sas_url(storage: BlobEndpoint, permission: ContainerSasPermissions) -> str:
    sas = generate_container_sas(
        storage.account,
        CONTAINER,
        account_key=storage.key,
        permission=permission,
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return f"{storage.url}/{CONTAINER}?{sas}"


WRITE = ContainerSasPermissions(write=True, add=True, create=True)


def upload_payload(url: str, **options: Any) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "sasUrl": url,
        "items": [{"id": "talker", "filter": {"regex": "disk|camera failed"}}],
        **options,
    }


async def finished(device: Device, correlation_id: str) -> dict[str, Any]:
    """GetTaskStatus until the task is no longer running."""
    answers: list[Any] = []

    async def poll() -> bool:
        status, answer = await device.call(
            "GetTaskStatus", {"schemaVersion": "1.0", "correlationId": correlation_id}
        )
        assert status == 200, answer
        answers.append(answer)
        return bool(answer["status"] != "Running")

    deadline = asyncio.get_running_loop().time() + 60
    while not await poll():
        assert asyncio.get_running_loop().time() < deadline, answers[-1]
        await asyncio.sleep(0.2)
    assert answers[-1]["correlationId"] == correlation_id
    result: dict[str, Any] = answers[-1]
    return result


async def started(device: Device, payload: dict[str, Any]) -> str:
    status, answer = await device.call("UploadModuleLogs", payload)
    assert status == 200, answer
    assert (answer["status"], answer["message"]) == ("Running", "")
    correlation_id: str = answer["correlationId"]
    return correlation_id


async def test_text_logs_upload_to_an_append_blob_named_as_edge_agent_names_it(monkeypatch):
    async with device_and_storage(monkeypatch) as (device, storage, container):
        task = await started(device, upload_payload(sas_url(storage, WRITE)))
        assert await finished(device, task) == {
            "status": "Completed",
            "message": "",
            "correlationId": task,
        }
        [blob] = await asyncio.to_thread(lambda: list(container.list_blobs()))
        data = await asyncio.to_thread(lambda: container.download_blob(blob.name).readall())
    assert blob.name.startswith(blob_prefix(device)) and blob.name.endswith(".log")
    assert blob.blob_type == "AppendBlob"
    assert blob.content_settings.content_type == "text/plain"
    lines = data.decode().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "talker - disk almost full",
        "talker - camera failed",
    ]


async def test_gzip_json_logs_upload_to_a_compressed_block_blob(monkeypatch):
    async with device_and_storage(monkeypatch) as (device, storage, container):
        payload = upload_payload(sas_url(storage, WRITE), encoding="gzip", contentType="json")
        task = await started(device, payload)
        assert (await finished(device, task))["status"] == "Completed"
        [blob] = await asyncio.to_thread(lambda: list(container.list_blobs()))
        data = await asyncio.to_thread(
            lambda: container.download_blob(blob.name, decompress=False).readall()
        )
    assert blob.name.startswith(blob_prefix(device)) and blob.name.endswith(".json.gz")
    assert blob.blob_type == "BlockBlob"
    assert blob.content_settings.content_type == "application/json"
    assert blob.content_settings.content_encoding == "gzip"
    records = json.loads(gzip.decompress(data))
    assert [(r["loglevel"], r["text"]) for r in records] == [
        (4, "[WRN] talker - disk almost full"),
        (3, "[ERR] talker - camera failed"),
    ]


async def test_an_upload_the_sas_url_does_not_allow_fails_and_the_status_says_why(monkeypatch):
    async with device_and_storage(monkeypatch) as (device, storage, container):
        read_only = sas_url(storage, ContainerSasPermissions(read=True, list=True))
        task = await started(device, upload_payload(read_only))
        answer = await finished(device, task)
        blobs = await asyncio.to_thread(lambda: list(container.list_blobs()))
    assert answer["status"] == "Failed"
    assert answer["message"].startswith("Task upload logs failed because of error ")
    assert "uploading" in answer["message"] and blobs == []


async def test_task_status_of_an_unknown_id_is_unknown_and_a_missing_sas_url_is_refused(
    monkeypatch,
):
    async with talking_device(monkeypatch) as device:
        unknown = await device.call(
            "GetTaskStatus", {"schemaVersion": "1.0", "correlationId": "not-a-task"}
        )
        missing = await device.call(
            "UploadModuleLogs", {"schemaVersion": "1.0", "items": [{"id": "talker"}]}
        )
        no_id = await device.call("GetTaskStatus", {"schemaVersion": "1.0"})
    assert unknown == (200, {"status": "Unknown", "message": "", "correlationId": "not-a-task"})
    assert missing[0] == 400 and "'sasUrl'" in missing[1]["message"]
    assert no_id[0] == 400 and "'correlationId'" in no_id[1]["message"]


def blob_prefix(device: Device) -> str:
    return device.sim.device(DEVICE).link.hub_host_name + BLOB_SUFFIX
