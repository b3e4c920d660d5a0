"""Identities as the registry holds them, and what creating or updating one sets."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass


def new_key() -> str:
    """A symmetric key as IoT Hub makes them: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class DeviceFields:
    """What creating or updating a device sets. Keys left None are generated on creation
    and kept on update."""

    edge: bool = True
    status: str = "enabled"
    status_reason: str | None = None
    primary_key: str | None = None
    secondary_key: str | None = None


@dataclass(frozen=True)
class ModuleFields:
    """What creating or updating a module identity sets (keys as for ``DeviceFields``)."""

    managed_by: str | None = "IotEdge"
    primary_key: str | None = None
    secondary_key: str | None = None


# The defaults: an IoT Edge device, a module identity edgeAgent manages; keys generated.
EDGE_DEVICE = DeviceFields()
EDGE_MODULE = ModuleFields()


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    primary_key: str
    secondary_key: str
    is_edge: bool
    etag: str
    generation_id: str = ""
    status: str = "enabled"
    status_reason: str | None = None
    status_updated: str = "0001-01-01T00:00:00Z"

    @property
    def device_scope(self) -> str | None:
        # IoT Hub gives every edge device a scope naming it, for nested (child) devices.
        if not self.is_edge:
            return None
        return f"ms-azure-iot-edge://{self.device_id}-{self.generation_id}"


@dataclass(frozen=True)
class ModuleIdentity:
    device_id: str
    module_id: str
    primary_key: str
    secondary_key: str
    generation_id: str
    managed_by: str | None
    etag: str
