"""Which edge devices run in this process, which of their modules are connected, and when
each device and module was last active: what a twin's ``connectionState`` and
``lastActivityTime`` say, and where the hub sends a direct method.

A running device attaches its ``DeviceEndpoint`` (its edgeHub) while it runs. Activity times
are kept in memory and saved when the hub closes, so a restarted hub still says when a device
that is no longer running was last heard from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from simulator.hub.database import HubDatabase
from simulator.hub.twin_rules import iso_timestamp
from simulator.methods import MethodDispatcher

NEVER = "0001-01-01T00:00:00Z"
_ACTIVITY_META = "activity"


class DeviceEndpoint(Protocol):
    """What the hub reaches on a running edge device: its edgeHub."""

    @property
    def methods(self) -> MethodDispatcher: ...

    def is_connected(self, module_id: str) -> bool: ...


class Presence:
    """``__init__`` only assigns; use :meth:`load`."""

    def __init__(self, database: HubDatabase, activity: dict[str, str]) -> None:
        self._db = database
        self._endpoints: dict[str, DeviceEndpoint] = {}
        # "device/module" (or "device/" for the device) -> ISO time
        self._activity = activity

    @classmethod
    def load(cls, database: HubDatabase) -> Presence:
        saved = database.meta(_ACTIVITY_META) or {}
        return cls(database, {str(k): str(v) for k, v in saved.items()})

    def save(self) -> None:
        self._db.set_meta(_ACTIVITY_META, dict(self._activity))

    def attach(self, device_id: str, endpoint: DeviceEndpoint) -> Callable[[], None]:
        """The device runs and answers through ``endpoint`` until the returned call."""
        self._endpoints[device_id] = endpoint
        self.note_activity(device_id)

        def detach() -> None:
            if self._endpoints.get(device_id) is endpoint:
                del self._endpoints[device_id]
                self.note_activity(device_id)

        return detach

    def endpoint(self, device_id: str) -> DeviceEndpoint | None:
        return self._endpoints.get(device_id)

    def running_devices(self) -> list[str]:
        return sorted(self._endpoints)

    def device_connected(self, device_id: str) -> bool:
        return device_id in self._endpoints

    def module_connected(self, device_id: str, module_id: str) -> bool:
        endpoint = self._endpoints.get(device_id)
        return endpoint is not None and endpoint.is_connected(module_id)

    def note_activity(self, device_id: str, module_id: str = "") -> None:
        now = iso_timestamp(dt.datetime.now(dt.UTC))
        self._activity[f"{device_id}/{module_id}"] = now
        if module_id:
            self._activity[f"{device_id}/"] = now

    def last_activity(self, device_id: str, module_id: str = "") -> str:
        return self._activity.get(f"{device_id}/{module_id}", NEVER)

    def forget(self, device_id: str, module_id: str | None = None) -> None:
        prefix = f"{device_id}/" if module_id is None else f"{device_id}/{module_id}"
        for key in [k for k in self._activity if k.startswith(prefix)]:
            if module_id is None or key == prefix:
                del self._activity[key]
