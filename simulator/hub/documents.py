"""The JSON documents the service API returns and queries run over, in IoT Hub's shapes.

A twin document joins three sources: the twin store (tags, properties, versions), the
registry (status, capabilities, keys) and presence (connection state, last activity). Device
identities and module identities have their own shapes (``GET /devices/{id}``,
``GET /devices/{id}/modules/{mid}``).
"""

from __future__ import annotations

from simulator.hub.identity import DeviceIdentity, ModuleIdentity
from simulator.hub.presence import Presence
from simulator.hub.registry import Registry
from simulator.hub.twins import DEVICE_TWIN, TwinStore
from simulator.jsondoc import JsonObject

_NO_THUMBPRINTS: JsonObject = {"primaryThumbprint": None, "secondaryThumbprint": None}


class TwinDocuments:
    def __init__(self, registry: Registry, twins: TwinStore, presence: Presence) -> None:
        self._registry = registry
        self._twins = twins
        self._presence = presence

    def _state(self, connected: bool) -> str:
        return "Connected" if connected else "Disconnected"

    # -- twins -----------------------------------------------------------------------------

    def device_twin(self, device: DeviceIdentity) -> JsonObject:
        identity: JsonObject = {
            "status": device.status,
            "statusReason": device.status_reason,
            "statusUpdateTime": device.status_updated,
            "connectionState": self._state(self._presence.device_connected(device.device_id)),
            "lastActivityTime": self._presence.last_activity(device.device_id),
            "capabilities": {"iotEdge": device.is_edge},
            "deviceScope": device.device_scope,
            "parentScopes": [],
        }
        return self._twins.get_for_service(device.device_id, DEVICE_TWIN, identity)

    def module_twin(self, module: ModuleIdentity) -> JsonObject:
        device = self._registry.require_device(module.device_id)
        d, m = module.device_id, module.module_id
        identity: JsonObject = {
            "status": device.status,
            "connectionState": self._state(self._presence.module_connected(d, m)),
            "lastActivityTime": self._presence.last_activity(d, m),
        }
        return self._twins.get_for_service(d, m, identity)

    def device_twins(self) -> list[JsonObject]:
        return [self.device_twin(d) for d in self._registry.devices()]

    def module_twins(self) -> list[JsonObject]:
        return [self.module_twin(m) for m in self._registry.modules()]

    # -- identities ------------------------------------------------------------------------

    def device_identity(self, device: DeviceIdentity) -> JsonObject:
        return {
            "deviceId": device.device_id,
            "generationId": device.generation_id,
            "etag": device.etag,
            "connectionState": self._state(self._presence.device_connected(device.device_id)),
            "status": device.status,
            "statusReason": device.status_reason,
            "connectionStateUpdatedTime": self._presence.last_activity(device.device_id),
            "statusUpdatedTime": device.status_updated,
            "lastActivityTime": self._presence.last_activity(device.device_id),
            "cloudToDeviceMessageCount": 0,
            "authentication": _sas(device.primary_key, device.secondary_key),
            "capabilities": {"iotEdge": device.is_edge},
            "deviceScope": device.device_scope,
            "parentScopes": [],
        }

    def module_identity(self, module: ModuleIdentity) -> JsonObject:
        d, m = module.device_id, module.module_id
        return {
            "moduleId": m,
            "deviceId": d,
            "managedBy": module.managed_by,
            "generationId": module.generation_id,
            "etag": module.etag,
            "connectionState": self._state(self._presence.module_connected(d, m)),
            "connectionStateUpdatedTime": self._presence.last_activity(d, m),
            "lastActivityTime": self._presence.last_activity(d, m),
            "cloudToDeviceMessageCount": 0,
            "authentication": _sas(module.primary_key, module.secondary_key),
        }


def _sas(primary: str, secondary: str) -> JsonObject:
    return {
        "type": "sas",
        "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary},
        "x509Thumbprint": dict(_NO_THUMBPRINTS),
    }
