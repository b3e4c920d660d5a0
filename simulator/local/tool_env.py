"""What the operator's tools need to reach a running simulator, written where they can find it.

``up`` and ``demo`` write ``<state>/connection.json`` and a CA bundle (the system's CAs plus the
simulator's, so a shell that trusts the simulator still reaches everything else).
``python -m simulator env`` turns that into ``export`` lines:

    eval "$(python -m simulator env)"
    python -m cloud_tools model status --device edge-device

The exported values are secrets (the hub's owner key, the storage account key): they go to
the shell that asked, never into logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import certifi

from simulator.app import Simulator
from simulator.local.blob_storage import AzuriteServer, BlobEndpoint, BlobStorageUnavailableError

log = logging.getLogger(__name__)

CONNECTION_FILE = "connection.json"
CA_BUNDLE_FILE = "ca-bundle.pem"


@contextlib.asynccontextmanager
async def blob_storage(sim: Simulator, port: int) -> AsyncIterator[AzuriteServer | None]:
    """Azurite beside the simulator, started, serving TLS with the simulator's server
    certificate; None (with a warning) where Azurite is not installed: the hub works without
    it. Stopped on exit (``stop`` may also be called earlier)."""
    certs_dir = sim.ca_path.parent
    server = AzuriteServer(
        sim.settings.state_dir / "blob",
        sim.settings.address,
        certs_dir / "server.pem",
        certs_dir / "server.key.pem",
        port,
    )
    try:
        await server.start()
    except BlobStorageUnavailableError as e:
        log.warning("no Blob Storage emulator: %s", e)
        yield None
        return
    try:
        yield server
    finally:
        await server.stop()


def write_connection_info(sim: Simulator, storage: BlobEndpoint | None) -> Path:
    state = sim.settings.state_dir
    bundle = state / CA_BUNDLE_FILE
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + sim.ca_path.read_text())
    info: dict[str, Any] = {
        "hubConnectionString": sim.hub_connection_string(),
        "caFile": str(sim.ca_path),
        "caBundle": str(bundle),
        "deviceId": sim.settings.device_id,
        "gateway": sim.settings.address,
        "upstreamStore": str(state / "upstream.sqlite"),
        "storageConnectionString": storage.connection_string() if storage else None,
    }
    path = state / CONNECTION_FILE
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)  # it holds the hub's and the storage account's keys
    return path


def export_lines(state_dir: Path) -> list[str]:
    """Shell ``export`` lines for the tools; raises FileNotFoundError when nothing runs there."""
    info = json.loads((state_dir / CONNECTION_FILE).read_text())
    values = {
        "IOTHUB_CONNECTION_STRING": info["hubConnectionString"],
        "AZURE_STORAGE_CONNECTION_STRING": info.get("storageConnectionString"),
        "REQUESTS_CA_BUNDLE": info.get("caBundle") or info["caFile"],
        "EDGE_SIM_UPSTREAM_STORE": info["upstreamStore"],
        "EDGE_SIM_DEVICE_ID": info["deviceId"],
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items() if value]
