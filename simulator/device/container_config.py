"""How the container backend turns a module into a Docker container: the Engine API body
for ``POST /containers/create`` (createOptions as given, plus what edgeAgent and aziot-edged
add and what host networking changes; see ``container_backend.py``), the names and labels
that scope containers and volumes to one simulator and device, and the registry credentials
an image is pulled with. Pure: nothing here talks to an engine.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.deployment.manifest import ModuleSpec

__all__ = [
    "DEVICE_LABEL",
    "MODULE_LABEL",
    "OWNER",
    "OWNER_LABEL",
    "SCOPE_LABEL",
    "WORKLOAD_SOCKET_IN_CONTAINER",
    "ContainerSettings",
    "container_config",
    "named_volumes",
    "registry_credential",
]

OWNER_LABEL = "net.azure-devices.edge.owner"
OWNER = "Microsoft.Azure.Devices.Edge.Agent"
SCOPE_LABEL = "net.azure-devices.edge.simulator.scope"
DEVICE_LABEL = "net.azure-devices.edge.simulator.device"
MODULE_LABEL = "net.azure-devices.edge.simulator.module"
WORKLOAD_SOCKET_IN_CONTAINER = "/var/run/iotedge/workload.sock"
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class ContainerSettings:
    """What a device's containers share.

    ``scope`` names this simulator (its state folder), so two simulators on one engine never
    touch each other's containers or volumes. ``extra_env`` and ``extra_binds`` are the
    device's own trust settings for every module (the simulator's CA, which also signs the
    local Blob Storage emulator's certificate).
    """

    scope: str
    device_id: str
    gateway_address: str
    workload_socket: Path
    gateway_host_name: str = "edgeHub"
    platform: str = "linux/amd64"
    echo_output: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    extra_binds: tuple[str, ...] = ()

    def name(self, part: str) -> str:
        return _NAME_CHARS.sub("-", f"{self.scope}-{self.device_id}-{part}")


def registry_credential(runtime: Mapping[str, Any], image: str) -> dict[str, str] | None:
    """The deployment's ``registryCredentials`` entry whose address is the image's registry."""
    registry = image.split("/", 1)[0] if "/" in image else ""
    settings = runtime.get("settings") or {}
    for entry in (settings.get("registryCredentials") or {}).values():
        if isinstance(entry, Mapping) and entry.get("address") == registry:
            return {"username": str(entry.get("username")), "password": str(entry.get("password"))}
    return None


def container_config(
    spec: ModuleSpec, env: Mapping[str, str], settings: ContainerSettings
) -> dict[str, Any]:
    """The Docker Engine API body for ``POST /containers/create``."""
    options = copy.deepcopy(dict(spec.create_options))
    config: dict[str, Any] = {**options, "Image": spec.image}
    config["Env"] = [f"{name}={value}" for name, value in env.items()]
    config.pop("ExposedPorts", None)
    labels = dict(options.get("Labels") or {})
    labels.update(
        {
            OWNER_LABEL: OWNER,
            "net.azure-devices.edge.version": spec.version,
            "net.azure-devices.edge.restartPolicy": str(spec.restart_policy),
            "net.azure-devices.edge.desiredStatus": str(spec.status),
            "net.azure-devices.edge.normalizedCreateOptions": json.dumps(
                spec.create_options, sort_keys=True, separators=(",", ":")
            ),
            "net.azure-devices.edge.original-image": spec.image,
            SCOPE_LABEL: settings.scope,
            DEVICE_LABEL: settings.device_id,
            MODULE_LABEL: spec.name,
        }
    )
    config["Labels"] = labels
    host: dict[str, Any] = dict(options.get("HostConfig") or {})
    host["NetworkMode"] = "host"
    host.pop("PortBindings", None)
    host["RestartPolicy"] = {"Name": "no"}
    host["Binds"] = [
        *(_scoped_bind(bind, settings) for bind in host.get("Binds") or []),
        f"{settings.workload_socket}:{WORKLOAD_SOCKET_IN_CONTAINER}",
        *settings.extra_binds,
    ]
    host["Mounts"] = [_scoped_mount(mount, settings) for mount in host.get("Mounts") or []]
    host["ExtraHosts"] = [
        *(host.get("ExtraHosts") or []),
        f"{settings.gateway_host_name}:{settings.gateway_address}",
    ]
    config["HostConfig"] = host
    config.pop("NetworkingConfig", None)
    return config


def named_volumes(config: Mapping[str, Any]) -> list[str]:
    host = config.get("HostConfig") or {}
    # A volume mount without a Source is an anonymous volume: Docker names it.
    names = [
        str(m["Source"])
        for m in host.get("Mounts") or []
        if m.get("Type") == "volume" and m.get("Source")
    ]
    for bind in host.get("Binds") or []:
        source, sep, _ = str(bind).partition(":")
        if sep and not source.startswith("/"):
            names.append(source)
    return names


def _scoped_bind(bind: str, settings: ContainerSettings) -> str:
    source, sep, rest = str(bind).partition(":")
    if sep and not source.startswith("/"):
        return f"{settings.name(source)}:{rest}"  # a named volume
    return str(bind)


def _scoped_mount(mount: Mapping[str, Any], settings: ContainerSettings) -> dict[str, Any]:
    scoped = dict(mount)
    if scoped.get("Type") == "volume" and scoped.get("Source"):
        scoped["Source"] = settings.name(str(scoped["Source"]))
    return scoped
