"""The hub's identity registry: devices, module identities, keys and the service policy.

Persisted as one JSON file in the state directory so a restarted simulator keeps every key
(modules holding a connection string, and service tools holding the policy key, keep working).
Writes go to a temporary file first and are renamed into place, so a crash never leaves half a
registry behind.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from simulator.errors import HubError, SasTokenError
from simulator.sas import SasToken, verify_module_token

REGISTRY_FILE = "registry.json"
SERVICE_POLICY = "iothubowner"
# IoT Hub creates these two module identities with every IoT Edge device.
EDGE_SYSTEM_MODULES = ("$edgeAgent", "$edgeHub")
_FORMAT_VERSION = 1


def new_key() -> str:
    """A symmetric key as IoT Hub makes them: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    primary_key: str
    secondary_key: str
    is_edge: bool
    etag: str


@dataclass(frozen=True)
class ModuleIdentity:
    device_id: str
    module_id: str
    primary_key: str
    secondary_key: str
    generation_id: str
    managed_by: str | None
    etag: str


class Registry:
    """Identities of one simulated hub. ``__init__`` only assigns; use :meth:`load_or_create`."""

    def __init__(
        self,
        path: Path | None,
        hub_host_name: str,
        policy_keys: dict[str, str],
        devices: dict[str, DeviceIdentity],
        modules: dict[tuple[str, str], ModuleIdentity],
    ) -> None:
        self._path = path
        self.hub_host_name = hub_host_name
        self._policy_keys = policy_keys
        self._devices = devices
        self._modules = modules

    @classmethod
    def load_or_create(cls, state_dir: Path, hub_host_name: str) -> Registry:
        """Load ``registry.json`` from ``state_dir``, or create a fresh hub and save it."""
        path = state_dir / REGISTRY_FILE
        if not path.exists():
            registry = cls(path, hub_host_name, {SERVICE_POLICY: new_key()}, {}, {})
            registry.save()
            return registry
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported registry format {data.get('format')!r}")
        if data["hubHostName"] != hub_host_name:
            raise ValueError(
                f"{path} belongs to hub {data['hubHostName']!r}, not {hub_host_name!r}; "
                "use another state directory"
            )
        devices = {d["device_id"]: DeviceIdentity(**d) for d in data["devices"]}
        modules = {(m["device_id"], m["module_id"]): ModuleIdentity(**m) for m in data["modules"]}
        return cls(path, hub_host_name, dict(data["policies"]), devices, modules)

    @classmethod
    def in_memory(cls, hub_host_name: str) -> Registry:
        """A registry that is never written to disk (unit tests, throw-away hubs)."""
        return cls(None, hub_host_name, {SERVICE_POLICY: new_key()}, {}, {})

    def save(self) -> None:
        if self._path is None:
            return
        data: dict[str, Any] = {
            "format": _FORMAT_VERSION,
            "hubHostName": self.hub_host_name,
            "policies": self._policy_keys,
            "devices": [asdict(d) for d in self._devices.values()],
            "modules": [asdict(m) for m in self._modules.values()],
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, self._path)

    # -- service policies ------------------------------------------------------------------

    @property
    def policy_keys(self) -> dict[str, str]:
        return dict(self._policy_keys)

    def service_connection_string(
        self, host: str | None = None, policy: str = SERVICE_POLICY
    ) -> str:
        """``host`` is where the service API listens (``127.0.0.2:8443``); the SDK dials it."""
        return (
            f"HostName={host or self.hub_host_name};SharedAccessKeyName={policy};"
            f"SharedAccessKey={self._policy_keys[policy]}"
        )

    # -- devices ---------------------------------------------------------------------------

    def add_device(self, device_id: str, *, edge: bool = True) -> DeviceIdentity:
        """Create a device (idempotent: an existing device keeps its keys)."""
        _check_id(device_id, "device")
        existing = self._devices.get(device_id)
        if existing is not None:
            return existing
        device = DeviceIdentity(device_id, new_key(), new_key(), edge, _new_etag())
        self._devices[device_id] = device
        if edge:
            for module_id in EDGE_SYSTEM_MODULES:
                self._put_module(device_id, module_id, managed_by=None)
        self.save()
        return device

    def get_device(self, device_id: str) -> DeviceIdentity | None:
        return self._devices.get(device_id)

    def devices(self) -> list[DeviceIdentity]:
        return list(self._devices.values())

    # -- modules ---------------------------------------------------------------------------

    def add_module(
        self, device_id: str, module_id: str, *, managed_by: str | None = "IotEdge"
    ) -> ModuleIdentity:
        """Create a module identity (idempotent: an existing module keeps keys and generation)."""
        if device_id not in self._devices:
            raise HubError(404, "DeviceNotFound", f"device {device_id!r} does not exist")
        existing = self._modules.get((device_id, module_id))
        if existing is not None:
            return existing
        module = self._put_module(device_id, module_id, managed_by=managed_by)
        self.save()
        return module

    def _put_module(self, device_id: str, module_id: str, managed_by: str | None) -> ModuleIdentity:
        _check_id(module_id, "module")
        module = ModuleIdentity(
            device_id=device_id,
            module_id=module_id,
            primary_key=new_key(),
            secondary_key=new_key(),
            # A new generation id per creation is how aziot-edged tells a re-created module
            # from the old one; the workload API refuses signatures for stale generations.
            generation_id=uuid.uuid4().hex,
            managed_by=managed_by,
            etag=_new_etag(),
        )
        self._modules[(device_id, module_id)] = module
        return module

    def remove_module(self, device_id: str, module_id: str) -> None:
        if self._modules.pop((device_id, module_id), None) is None:
            raise HubError(404, "ModuleNotFound", f"module {device_id}/{module_id} does not exist")
        self.save()

    def rotate_module_keys(self, device_id: str, module_id: str) -> ModuleIdentity:
        module = self.require_module(device_id, module_id)
        rotated = replace(module, primary_key=new_key(), secondary_key=new_key(), etag=_new_etag())
        self._modules[(device_id, module_id)] = rotated
        self.save()
        return rotated

    def get_module(self, device_id: str, module_id: str) -> ModuleIdentity | None:
        return self._modules.get((device_id, module_id))

    def require_module(self, device_id: str, module_id: str) -> ModuleIdentity:
        module = self._modules.get((device_id, module_id))
        if module is None:
            raise HubError(404, "ModuleNotFound", f"module {device_id}/{module_id} does not exist")
        return module

    def modules(self, device_id: str | None = None) -> list[ModuleIdentity]:
        return [m for m in self._modules.values() if device_id is None or m.device_id == device_id]

    def module_connection_string(
        self, device_id: str, module_id: str, gateway_host_name: str | None = None
    ) -> str:
        module = self.require_module(device_id, module_id)
        parts = [f"HostName={self.hub_host_name}"]
        if gateway_host_name:
            parts.append(f"GatewayHostName={gateway_host_name}")
        parts += [
            f"DeviceId={device_id}",
            f"ModuleId={module_id}",
            f"SharedAccessKey={module.primary_key}",
        ]
        return ";".join(parts)

    def verify_module_token(
        self, device_id: str, module_id: str, token: str, now: float | None = None
    ) -> SasToken:
        """Check a module's SAS token against its primary, then its secondary key.

        Raises ``HubError`` 404 for an unknown module and ``SasTokenError`` for a bad token.
        """
        module = self.require_module(device_id, module_id)
        try:
            return verify_module_token(
                token,
                hub_host=self.hub_host_name,
                device_id=device_id,
                module_id=module_id,
                key_b64=module.primary_key,
                now=now,
            )
        except SasTokenError:
            # The secondary key exists so keys can be rolled without downtime; accept it too.
            return verify_module_token(
                token,
                hub_host=self.hub_host_name,
                device_id=device_id,
                module_id=module_id,
                key_b64=module.secondary_key,
                now=now,
            )


def _new_etag() -> str:
    return base64.b64encode(secrets.token_bytes(6)).decode("ascii")


_ID_EXTRA = set("-:.+%_#*?!(),=@;$'")


def _check_id(value: str, kind: str) -> None:
    """IoT Hub ids: up to 128 ASCII alphanumerics plus a fixed set of punctuation."""
    if (
        not value
        or len(value) > 128
        or not all(c.isascii() and (c.isalnum() or c in _ID_EXTRA) for c in value)
    ):
        raise HubError(400, "ArgumentInvalid", f"invalid {kind} id {value!r}")
