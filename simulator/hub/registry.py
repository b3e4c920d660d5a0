"""The hub's identity registry: devices, module identities, keys and the service policy.

Kept in the hub database (``hub.sqlite``) so a restarted simulator keeps every key: modules
holding a connection string, and service tools holding the policy key, keep working. A state
directory from before the database (``registry.json``) is imported once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from simulator.errors import HubError, SasTokenError
from simulator.hub.database import DEVICES, MODULES, HubDatabase, HubDatabaseError
from simulator.hub.identity import (
    EDGE_DEVICE,
    EDGE_MODULE,
    DeviceFields,
    DeviceIdentity,
    ModuleFields,
    ModuleIdentity,
    new_key,
)
from simulator.hub.twin_rules import check_etag, iso_timestamp
from simulator.sas import SasToken, verify_module_token

LEGACY_REGISTRY_FILE = "registry.json"
SERVICE_POLICY = "iothubowner"
# IoT Hub creates these two module identities with every IoT Edge device.
EDGE_SYSTEM_MODULES = ("$edgeAgent", "$edgeHub")
DEVICE_STATUSES = ("enabled", "disabled")
_HUB_META = "hub"


def _now() -> str:
    return iso_timestamp(dt.datetime.now(dt.UTC))


class Registry:
    """Identities of one simulated hub. ``__init__`` only assigns; use :meth:`load`."""

    def __init__(
        self,
        database: HubDatabase,
        hub_host_name: str,
        policy_keys: dict[str, str],
        devices: dict[str, DeviceIdentity],
        modules: dict[tuple[str, str], ModuleIdentity],
    ) -> None:
        self._db = database
        # The name this hub's state was made for (kept in it); the service API's HostName,
        # once it listens, is the name given out (see ``serve_as``).
        self.hub_host_name = hub_host_name
        self._served_as: str | None = None
        self._policy_keys = policy_keys
        self._devices = devices
        self._modules = modules

    @classmethod
    def load(cls, database: HubDatabase, hub_host_name: str) -> Registry:
        """The registry in ``database``; a fresh database gets a new hub (and new keys)."""
        meta = database.meta(_HUB_META)
        if meta is None:
            registry = cls(database, hub_host_name, {SERVICE_POLICY: new_key()}, {}, {})
            legacy = database.path.parent / LEGACY_REGISTRY_FILE
            if database.created and legacy.exists():
                registry._import_legacy(legacy)
            registry._save_meta()
            return registry
        if meta.get("hubHostName") != hub_host_name:
            raise HubDatabaseError(
                f"{database.path} belongs to hub {meta.get('hubHostName')!r}, not "
                f"{hub_host_name!r}; use another state directory"
            )
        policies = meta.get("policies")
        assert isinstance(policies, dict)
        devices = {key[0]: _device(doc) for key, doc in database.load(DEVICES).items()}
        modules = {(k[0], k[1]): _module(doc) for k, doc in database.load(MODULES).items()}
        return cls(
            database, hub_host_name, {str(k): str(v) for k, v in policies.items()}, devices, modules
        )

    @classmethod
    def in_memory(cls, hub_host_name: str) -> Registry:
        """A registry that is never written to disk (unit tests, throw-away hubs)."""
        return cls.load(HubDatabase.in_memory(), hub_host_name)

    def _save_meta(self) -> None:
        self._db.set_meta(
            _HUB_META, {"hubHostName": self.hub_host_name, "policies": dict(self._policy_keys)}
        )

    def _import_legacy(self, path: Path) -> None:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("hubHostName") != self.hub_host_name:
            raise HubDatabaseError(
                f"{path} belongs to hub {data.get('hubHostName')!r}, not {self.hub_host_name!r}"
            )
        self._policy_keys = dict(data["policies"])
        for d in data["devices"]:
            self._put_device(DeviceIdentity(**d, generation_id=uuid.uuid4().hex))
        for m in data["modules"]:
            self._put_module_identity(ModuleIdentity(**m))

    # -- host names ------------------------------------------------------------------------

    def serve_as(self, host_name: str) -> None:
        """Make ``host_name`` (the service API's ``host:port``, which the service SDK dials and
        signs) the hub's name for everything, module tokens too, as IoT Hub has one name."""
        self._served_as = host_name

    @property
    def host_name(self) -> str:
        """The hub's name in connection strings: the service API's HostName once it listens."""
        return self._served_as or self.hub_host_name

    @property
    def host_names(self) -> frozenset[str]:
        """Lower-cased names tokens may be signed for: ``host_name``, and the name the state
        was made for, so connection strings made before the service API listened still work."""
        return frozenset({self.host_name.lower(), self.hub_host_name.lower()})

    # -- service policies ------------------------------------------------------------------

    @property
    def policy_keys(self) -> dict[str, str]:
        return dict(self._policy_keys)

    def service_connection_string(
        self, host: str | None = None, policy: str = SERVICE_POLICY
    ) -> str:
        """``host`` is where the service API listens (``127.0.0.2:8443``); the SDK dials it."""
        return (
            f"HostName={host or self.host_name};SharedAccessKeyName={policy};"
            f"SharedAccessKey={self._policy_keys[policy]}"
        )

    # -- devices ---------------------------------------------------------------------------

    def add_device(self, device_id: str, fields: DeviceFields = EDGE_DEVICE) -> DeviceIdentity:
        """Create a device (idempotent: an existing device keeps its keys)."""
        _check_id(device_id, "device")
        existing = self._devices.get(device_id)
        if existing is not None:
            return existing
        _check_status(fields.status)
        device = DeviceIdentity(
            device_id,
            _check_key(fields.primary_key) or new_key(),
            _check_key(fields.secondary_key) or new_key(),
            fields.edge,
            _new_etag(),
            generation_id=uuid.uuid4().hex,
            status=fields.status,
            status_reason=fields.status_reason,
            status_updated=_now(),
        )
        with self._db.transaction():
            self._put_device(device)
            if fields.edge:
                for module_id in EDGE_SYSTEM_MODULES:
                    self._put_module(device_id, module_id, ModuleFields(managed_by=None))
        return device

    def update_device(
        self, device_id: str, fields: DeviceFields, *, if_match: str | None
    ) -> DeviceIdentity:
        """The service PUT on an existing device: status, keys, the edge capability."""
        device = self.require_device(device_id)
        check_etag(device.etag, if_match)
        _check_status(fields.status)
        updated = replace(
            device,
            status=fields.status,
            status_reason=fields.status_reason,
            status_updated=_now() if fields.status != device.status else device.status_updated,
            primary_key=_check_key(fields.primary_key) or device.primary_key,
            secondary_key=_check_key(fields.secondary_key) or device.secondary_key,
            is_edge=fields.edge,
            etag=_new_etag(),
        )
        with self._db.transaction():
            self._put_device(updated)
            if fields.edge and not device.is_edge:
                for module_id in EDGE_SYSTEM_MODULES:
                    if (device_id, module_id) not in self._modules:
                        self._put_module(device_id, module_id, ModuleFields(managed_by=None))
        return updated

    def remove_device(self, device_id: str, *, if_match: str | None = None) -> None:
        """The device and every module identity on it."""
        device = self.require_device(device_id)
        check_etag(device.etag, if_match)
        with self._db.transaction():
            del self._devices[device_id]
            self._db.delete(DEVICES, (device_id,))
            for key in [k for k in self._modules if k[0] == device_id]:
                del self._modules[key]
            self._db.delete_where(MODULES, device_id)

    def get_device(self, device_id: str) -> DeviceIdentity | None:
        return self._devices.get(device_id)

    def require_device(self, device_id: str) -> DeviceIdentity:
        device = self._devices.get(device_id)
        if device is None:
            raise HubError(404, "DeviceNotFound", f"device {device_id!r} does not exist")
        return device

    def devices(self) -> list[DeviceIdentity]:
        return sorted(self._devices.values(), key=lambda d: d.device_id)

    def _put_device(self, device: DeviceIdentity) -> None:
        self._devices[device.device_id] = device
        self._db.put(DEVICES, (device.device_id,), asdict(device))

    # -- modules ---------------------------------------------------------------------------

    def add_module(
        self, device_id: str, module_id: str, fields: ModuleFields = EDGE_MODULE
    ) -> ModuleIdentity:
        """Create a module identity (idempotent: an existing module keeps keys and generation)."""
        self.require_device(device_id)
        existing = self._modules.get((device_id, module_id))
        if existing is not None:
            return existing
        return self._put_module(device_id, module_id, fields)

    def update_module(
        self, device_id: str, module_id: str, fields: ModuleFields, *, if_match: str | None
    ) -> ModuleIdentity:
        module = self.require_module(device_id, module_id)
        check_etag(module.etag, if_match)
        updated = replace(
            module,
            managed_by=fields.managed_by,
            primary_key=_check_key(fields.primary_key) or module.primary_key,
            secondary_key=_check_key(fields.secondary_key) or module.secondary_key,
            etag=_new_etag(),
        )
        self._put_module_identity(updated)
        return updated

    def _put_module(self, device_id: str, module_id: str, fields: ModuleFields) -> ModuleIdentity:
        _check_id(module_id, "module")
        module = ModuleIdentity(
            device_id=device_id,
            module_id=module_id,
            primary_key=_check_key(fields.primary_key) or new_key(),
            secondary_key=_check_key(fields.secondary_key) or new_key(),
            # A new generation id per creation is how aziot-edged tells a re-created module
            # from the old one; the workload API refuses signatures for stale generations.
            generation_id=uuid.uuid4().hex,
            managed_by=fields.managed_by,
            etag=_new_etag(),
        )
        self._put_module_identity(module)
        return module

    def _put_module_identity(self, module: ModuleIdentity) -> None:
        self._modules[(module.device_id, module.module_id)] = module
        self._db.put(MODULES, (module.device_id, module.module_id), asdict(module))

    def remove_module(self, device_id: str, module_id: str, *, if_match: str | None = None) -> None:
        module = self.require_module(device_id, module_id)
        check_etag(module.etag, if_match)
        if module_id in EDGE_SYSTEM_MODULES and self._devices[device_id].is_edge:
            raise HubError(
                400, "ArgumentInvalid", f"{module_id} belongs to the edge device; it cannot go"
            )
        del self._modules[(device_id, module_id)]
        self._db.delete(MODULES, (device_id, module_id))

    def rotate_module_keys(self, device_id: str, module_id: str) -> ModuleIdentity:
        module = self.require_module(device_id, module_id)
        rotated = replace(module, primary_key=new_key(), secondary_key=new_key(), etag=_new_etag())
        self._put_module_identity(rotated)
        return rotated

    def get_module(self, device_id: str, module_id: str) -> ModuleIdentity | None:
        return self._modules.get((device_id, module_id))

    def require_module(self, device_id: str, module_id: str) -> ModuleIdentity:
        module = self._modules.get((device_id, module_id))
        if module is None:
            raise HubError(404, "ModuleNotFound", f"module {device_id}/{module_id} does not exist")
        return module

    def modules(self, device_id: str | None = None) -> list[ModuleIdentity]:
        found = [m for m in self._modules.values() if device_id is None or m.device_id == device_id]
        return sorted(found, key=lambda m: (m.device_id, m.module_id))

    def module_connection_string(
        self, device_id: str, module_id: str, gateway_host_name: str | None = None
    ) -> str:
        module = self.require_module(device_id, module_id)
        parts = [f"HostName={self.host_name}"]
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

        Raises ``HubError`` 404 for an unknown module, 401 for a disabled device, and
        ``SasTokenError`` for a bad token.
        """
        module = self.require_module(device_id, module_id)
        if self.require_device(device_id).status != "enabled":
            raise HubError(401, "DeviceDisabled", f"device {device_id!r} is disabled")
        try:
            return verify_module_token(
                token,
                hub_hosts=self.host_names,
                device_id=device_id,
                module_id=module_id,
                key_b64=module.primary_key,
                now=now,
            )
        except SasTokenError:
            # The secondary key exists so keys can be rolled without downtime; accept it too.
            return verify_module_token(
                token,
                hub_hosts=self.host_names,
                device_id=device_id,
                module_id=module_id,
                key_b64=module.secondary_key,
                now=now,
            )


def _device(doc: dict[str, Any]) -> DeviceIdentity:
    return DeviceIdentity(**doc)


def _module(doc: dict[str, Any]) -> ModuleIdentity:
    return ModuleIdentity(**doc)


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


def _check_status(status: str) -> None:
    if status not in DEVICE_STATUSES:
        raise HubError(400, "ArgumentInvalid", f"status must be one of {DEVICE_STATUSES}")


def _check_key(key: str | None) -> str | None:
    """A caller-supplied key must be base64 of 16 to 64 bytes, as IoT Hub requires."""
    if not key:
        return None
    try:
        size = len(base64.b64decode(key, validate=True))
    except ValueError:
        raise HubError(400, "ArgumentInvalid", "a symmetric key must be base64") from None
    if not 16 <= size <= 64:
        raise HubError(400, "ArgumentInvalid", "a symmetric key must be 16 to 64 bytes")
    return key
