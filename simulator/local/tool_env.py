"""What the operator's tools need to reach a running simulator, written where they can find it.

``up`` and ``demo`` write ``<state>/connection.json`` and a CA bundle (the system's CAs plus the
simulator's, so a shell that trusts the simulator still reaches everything else).
``python -m simulator env`` turns that into ``export`` lines:

    eval "$(python -m simulator env)"
    python -m cloud_tools model status --device edge-device

``connection.json`` also lists every device with its gateway address, and says how to run a
module of one's own against a device (``python -m simulator module-env``).

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

from simulator.fleet import Fleet
from simulator.local.blob_storage import AzuriteServer, BlobEndpoint, BlobStorageUnavailableError
from simulator.local.registry import RegistryEndpoint

log = logging.getLogger(__name__)

CONNECTION_FILE = "connection.json"
CA_BUNDLE_FILE = "ca-bundle.pem"


@contextlib.asynccontextmanager
async def blob_storage(fleet: Fleet, port: int) -> AsyncIterator[AzuriteServer | None]:
    """Azurite beside the simulator, started, serving TLS with the simulator's server
    certificate; None (with a warning) where Azurite is not installed: the hub works without
    it. Stopped on exit (``stop`` may also be called earlier)."""
    server = AzuriteServer(
        fleet.settings.state_dir / "blob",
        fleet.settings.address,
        fleet.certs.server_cert_path,
        fleet.certs.server_key_path,
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


def write_connection_info(
    fleet: Fleet, storage: BlobEndpoint | None, registry: RegistryEndpoint | None = None
) -> Path:
    state = fleet.settings.state_dir
    bundle = state / CA_BUNDLE_FILE
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + fleet.ca_path.read_text())
    devices = [
        {
            "deviceId": device.device_id,
            "gatewayHostName": device.address,
            "mqttPort": device.settings.mqtt_port,
            "moduleLogs": str(device.runtime.logs_dir),
        }
        for device in fleet.devices.values()
    ]
    first = devices[0] if devices else {"deviceId": None, "gatewayHostName": None}
    info: dict[str, Any] = {
        "hubConnectionString": fleet.hub_connection_string(),
        "hubHostName": fleet.hub.host_name,
        "caFile": str(fleet.ca_path),
        "caBundle": str(bundle),
        "deviceId": first["deviceId"],
        "gateway": first["gatewayHostName"],
        "devices": devices,
        # A module of one's own: its identity, connection string and CA, for any device.
        "moduleEnvironment": "python -m simulator module-env --device DEVICE --module MODULE",
        "upstreamStore": str(state / "upstream.sqlite"),
        "storageConnectionString": storage.connection_string() if storage else None,
        # The image registry of --runtime docker, as iotedgedev's .env names it.
        "containerRegistry": registry.variables() if registry else None,
    }
    path = state / CONNECTION_FILE
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)  # it holds the hub's and the storage account's keys
    return path


def read_connection_info(state_dir: Path) -> dict[str, Any]:
    """``connection.json``; raises FileNotFoundError when nothing ran there."""
    info: dict[str, Any] = json.loads((state_dir / CONNECTION_FILE).read_text())
    return info


def tool_variables(state_dir: Path) -> dict[str, str]:
    """The tools' environment variables; raises FileNotFoundError when nothing ran there."""
    info = read_connection_info(state_dir)
    values = {
        "IOTHUB_CONNECTION_STRING": info["hubConnectionString"],
        "AZURE_STORAGE_CONNECTION_STRING": info.get("storageConnectionString"),
        "REQUESTS_CA_BUNDLE": info.get("caBundle") or info["caFile"],
        "EDGE_SIM_UPSTREAM_STORE": info["upstreamStore"],
        "EDGE_SIM_DEVICE_ID": info["deviceId"],
        "EDGE_SIM_DEVICE_IDS": ",".join(d["deviceId"] for d in info.get("devices") or []),
    }
    values.update(info.get("containerRegistry") or {})
    return {name: str(value) for name, value in values.items() if value}


def export_lines(state_dir: Path) -> list[str]:
    """Shell ``export`` lines for the tools; raises FileNotFoundError when nothing runs there."""
    return [f"export {k}={shlex.quote(v)}" for k, v in tool_variables(state_dir).items()]
