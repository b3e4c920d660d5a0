"""The IoT Edge way, on the simulator: a layered deployment adds the local Blob Storage module
(Azurite in its place) and the classifier's capture policies; the demo camera's frames that a
policy chooses land in that module's container, and the classifier reports them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient

from cloud_tools.genconfig import prepare
from simulator.fleet import Fleet
from simulator.local.blob_module import ACCOUNT_NAME, MODULE_NAME, blob_connection_string
from simulator.local.blob_storage import BlobStorageUnavailableError, find_azurite
from simulator.local.modules import (
    CAMERA_LAYER,
    PLATFORM,
    REPO,
    TEMPLATE,
    local_device_manifest,
    local_environment,
    local_storage_key,
    repo_module_commands,
)
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, running_simulator
from tests.integration.model_update_e2e_support import require_tools

BLOB_LAYER = REPO / "layered.blobstorage.template.json"

pytestmark = pytest.mark.slow


def test_the_blob_storage_layer_adds_the_module_and_the_capture_policies() -> None:
    layer = prepare(BLOB_LAYER, PLATFORM, local_environment(), base=TEMPLATE).document
    assert layer["priority"] > 10, "above the camera layer"
    manifest = local_device_manifest(TEMPLATE, (CAMERA_LAYER, BLOB_LAYER))
    content = manifest["modulesContent"]
    module = content["$edgeAgent"]["properties.desired"]["modules"][MODULE_NAME]
    assert module["env"]["LOCAL_STORAGE_ACCOUNT_NAME"]["value"] == ACCOUNT_NAME
    assert module["env"]["LOCAL_STORAGE_ACCOUNT_KEY"]["value"] == local_storage_key()
    capture = content["classifier"]["properties.desired"]["capture"]
    assert set(capture) >= {"low_confidence", "margin", "random", "max_bytes_per_day"}


def _captured_sidecars(address: str) -> list[dict[str, Any]]:
    connection = blob_connection_string(address, ACCOUNT_NAME, local_storage_key())
    service = BlobServiceClient.from_connection_string(connection, retry_total=0)
    container = service.get_container_client("captures")
    try:
        if not container.exists():
            return []
    except ServiceRequestError:  # the storage module is still starting
        return []
    return [
        json.loads(container.download_blob(b.name).readall())
        for b in container.list_blobs()
        if b.name.endswith(".json")
    ]


def _reported_capture(sim: Fleet) -> dict[str, Any]:
    reported = sim.state.twins.get_for_module(DEVICE, "classifier")["reported"]
    assert isinstance(reported, dict)
    capture = reported.get("capture") or {}
    assert isinstance(capture, dict)
    return capture


async def test_camera_frames_a_policy_chooses_land_in_the_device_s_blob_storage_module() -> None:
    try:
        find_azurite()
    except BlobStorageUnavailableError as e:
        if require_tools():
            pytest.fail(str(e))
        pytest.skip(str(e))
    manifest = local_device_manifest(TEMPLATE, (CAMERA_LAYER, BLOB_LAYER))
    desired = manifest["modulesContent"]["classifier"]["properties.desired"]
    desired["capture"] = {"random": {"probability": 1.0, "per_minute": 600}}
    async with running_simulator(manifest, repo_module_commands) as sim:
        address = sim.device(DEVICE).address
        found: list[dict[str, Any]] = []

        async def some_captured() -> bool:
            found[:] = await asyncio.to_thread(_captured_sidecars, address)
            return len(found) >= 3

        deadline = asyncio.get_running_loop().time() + 120
        while not await some_captured():
            assert asyncio.get_running_loop().time() < deadline, "no captures in 120 s"
            await asyncio.sleep(1.0)
        await eventually(
            lambda: _reported_capture(sim).get("policies", {}).get("random", {}).get("captured"),
            60,
            "captures reported",
        )
    sidecar = found[0]
    assert sidecar["device"] == DEVICE and sidecar["policy"] == "random"
    assert sidecar["frame"]["source"] and sidecar["model"]["name"] == "seed-cnn-synth10"
