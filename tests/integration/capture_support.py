"""Real Azurite for the capture tests: on a random loopback address, over TLS with a throwaway
CA, stopped by its PID; restartable on the same port and data, as a storage module would be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from classifier.config import ModuleConfig
from edge_module.local_hub import LocalHub
from framesource.sources.synthetic import DEFAULT_SEED, make_frame
from simulator.certs import ensure_certificates
from simulator.local.blob_storage import (
    AzuriteServer,
    BlobEndpoint,
    BlobStorageUnavailableError,
    find_azurite,
)
from simulator.mqtt.testing import random_loopback_host
from tests.conftest import DEFAULT_MODEL
from tests.integration.model_update_e2e_support import require_tools
from tests.support.camera import camera_message


class Storage:
    def __init__(self, root: Path) -> None:
        self.host = random_loopback_host()
        self.certs = ensure_certificates(root / "certs", [self.host])
        self.workspace = root / "azurite"
        self.server: AzuriteServer | None = None
        self.port = 0

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_cert_path

    async def start(self) -> BlobEndpoint:
        server = AzuriteServer(
            self.workspace,
            self.host,
            self.certs.server_cert_path,
            self.certs.server_key_path,
            self.port,
        )
        endpoint = await server.start()
        self.server, self.port = server, endpoint.port
        return endpoint

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def env(self, endpoint: BlobEndpoint) -> dict[str, str]:
        """The classifier's settings for writing captures here."""
        return {
            "CAPTURE_STORAGE_CONNECTION_STRING": endpoint.connection_string(),
            "CAPTURE_CA_FILE": str(self.ca_file),
        }

    def blobs(self, endpoint: BlobEndpoint, container: str = "captures") -> dict[str, bytes]:
        service = BlobServiceClient.from_connection_string(
            endpoint.connection_string(), connection_verify=str(self.ca_file)
        )
        client = service.get_container_client(container)
        return {b.name: client.download_blob(b.name).readall() for b in client.list_blobs()}


@asynccontextmanager
async def azurite(root: Path) -> AsyncIterator[tuple[Storage, BlobEndpoint]]:
    try:
        find_azurite()
    except BlobStorageUnavailableError as e:
        if require_tools():
            pytest.fail(f"{e} (scripts/bootstrap.sh installs it)")
        pytest.skip(str(e))
    storage = Storage(root)
    endpoint = await storage.start()
    try:
        yield storage, endpoint
    finally:
        await storage.stop()


def policy_counts(reported: dict[str, Any], policy: str) -> dict[str, Any]:
    counts: dict[str, Any] = reported.get("capture", {}).get("policies", {}).get(policy, {})
    return counts


EVERY_FRAME = {"random": {"probability": 1.0, "per_minute": 6000}}


def capture_config(**env: str) -> ModuleConfig:
    return ModuleConfig.from_env(
        {
            "MODEL_PATH": str(DEFAULT_MODEL),
            "MODEL_CACHE_DIR": "off",
            "PASSTHROUGH_PROPERTIES": "truth",
            "QUALITY_REPORT_S": "0.2",
            "IOTEDGE_DEVICEID": "dock-7",
            **env,
        }
    )


async def send_camera_frames(hub: LocalHub, first: int, count: int) -> dict[str, bytes]:
    sent = {}
    for i in range(first, first + count):
        frame = make_frame("cam", DEFAULT_SEED, i, 320, 240, 85)
        sent[frame.message_id] = frame.jpeg
        await hub.deliver(camera_message(frame))
    return sent
