"""One edge device's connection to its hub: what its edgeHub, workload API and agent may ask.

On a real device edgeHub keeps an upstream connection to IoT Hub and edgeAgent reads its twin
through it; here the device runs in the hub's process and calls it directly. The link is
scoped to one device: every call names a module of that device and nothing else, so a device
can neither read nor change another device's identities or twins.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.hub.identity import ModuleIdentity
from simulator.hub.presence import DeviceEndpoint
from simulator.hub.state import HubState
from simulator.jsondoc import JsonObject
from simulator.messages import Message

DesiredCallback = Callable[[str, JsonObject], None]


class DeviceLink:
    def __init__(self, state: HubState, device_id: str) -> None:
        self._state = state
        self.device_id = device_id

    @property
    def hub_host_name(self) -> str:
        """The hub's name for modules (IOTEDGE_IOTHUBHOSTNAME, connection strings)."""
        return self._state.registry.host_name

    @property
    def hub_host_names(self) -> frozenset[str]:
        """Lower-cased names a module's MQTT user name and token may give the hub."""
        return self._state.registry.host_names

    # -- identities ------------------------------------------------------------------------

    def verify_module_token(self, module_id: str, token: str) -> None:
        """Raises ``HubError`` (unknown module, disabled device) or ``SasTokenError``."""
        self._state.registry.verify_module_token(self.device_id, module_id, token)

    def module(self, module_id: str) -> ModuleIdentity | None:
        return self._state.registry.get_module(self.device_id, module_id)

    def ensure_module(self, module_id: str) -> ModuleIdentity:
        """The module's identity, created as edgeAgent creates one for each module it runs."""
        return self._state.registry.add_module(self.device_id, module_id)

    def remove_module(self, module_id: str) -> None:
        """edgeAgent deletes the identities of modules a new deployment drops."""
        if self.module(module_id) is not None:
            self._state.delete_module(self.device_id, module_id, if_match=None)

    def module_connection_string(self, module_id: str, gateway: str) -> str:
        self.ensure_module(module_id)
        return self._state.registry.module_connection_string(self.device_id, module_id, gateway)

    # -- twins -----------------------------------------------------------------------------

    def module_twin(self, module_id: str) -> JsonObject:
        """The MQTT twin GET body."""
        return self._state.twins.get_for_module(self.device_id, module_id)

    def desired(self, module_id: str) -> tuple[JsonObject, int]:
        twins = self._state.twins
        return twins.desired(self.device_id, module_id), twins.desired_version(
            self.device_id, module_id
        )

    def reported(self, module_id: str) -> JsonObject:
        return self._state.twins.reported(self.device_id, module_id)

    def patch_reported(self, module_id: str, patch: object) -> int:
        return self._state.twins.patch_reported(self.device_id, module_id, patch)

    def on_desired(self, callback: DesiredCallback) -> Callable[[], None]:
        """``callback(module_id, patch_with_version)`` for this device's modules only."""

        def listener(device_id: str, module_id: str, patch: JsonObject) -> None:
            if device_id == self.device_id:
                callback(module_id, patch)

        return self._state.twins.add_desired_listener(listener)

    # -- messages and presence -------------------------------------------------------------

    def send_upstream(
        self, module_id: str | None, output_name: str | None, message: Message
    ) -> None:
        self._state.upstream.append(
            message, device_id=self.device_id, module_id=module_id, output_name=output_name
        )

    def note_activity(self, module_id: str) -> None:
        self._state.presence.note_activity(self.device_id, module_id)

    def attach(self, endpoint: DeviceEndpoint) -> Callable[[], None]:
        """The device runs, reachable through ``endpoint``, until the returned call."""
        return self._state.presence.attach(self.device_id, endpoint)
