"""A fleet on one machine: one simulated IoT Hub and N IoT Edge devices, built by ``start``.

Start order: the hub's state (registry, twins, deployments) from the state directory; the
devices' identities (new ones with their tags, so deployments target them at once) and
addresses; certificates naming every address; the hub's service API; the startup deployments
the hub does not hold yet; then each device (edgeHub, workload API, runtime, agent), which
reconciles what its twins hold. ``stop`` runs in reverse.

The state directory keeps everything a restart needs: ``hub.sqlite`` (identities, twins,
deployments, the service port), ``upstream.sqlite`` (messages that reached the cloud),
``certs/`` and ``devices/<id>/`` (module logs and volumes). A restart re-creates no startup
deployment that exists and writes no twin that deployments did not change, so the
deployments made since survive it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.certs import CertificateSet, ensure_certificates
from simulator.device.device import DeviceSettings, EdgeDevice, ModuleCommands
from simulator.errors import SimulatorError
from simulator.hub.database import EDGE_ENDPOINTS
from simulator.hub.device_link import DeviceLink
from simulator.hub.hub import DEFAULT_HOST_NAME, Hub, ServiceEndpoint
from simulator.hub.identity import DeviceFields
from simulator.hub.state import HubState
from simulator.hub.twins import DEVICE_TWIN
from simulator.jsondoc import JsonObject, JsonValue

log = logging.getLogger(__name__)

DEFAULT_DEVICE_ID = "edge-device"
DEVICES_DIR = "devices"


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    tags: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class StartupDeployment:
    """A deployment the fleet creates when the hub holds none by this id (never over one)."""

    config_id: str
    content: JsonObject  # modulesContent: whole sections for a base, paths for a layer
    target_condition: str = "*"
    priority: int = 0


@dataclass(frozen=True)
class FleetSettings:
    state_dir: Path
    address: str = "127.0.0.1"  # the service API's; devices take this and the next ones
    hub_host_name: str = DEFAULT_HOST_NAME
    service_port: int | None = None  # None: where it listened last time
    devices: tuple[DeviceSpec, ...] = (DeviceSpec(DEFAULT_DEVICE_ID),)
    startup: tuple[StartupDeployment, ...] = ()
    echo_module_output: bool = False
    module_stop_grace_s: float = 10.0
    extra_cert_names: tuple[str, ...] = ()
    skip_unmapped_modules: bool = False
    report_interval_s: float = 1.0
    # Create the startup deployments again even where an earlier run created them: their
    # devices' twins are rewritten, undoing what was deployed or pushed since.
    redeploy_startup: bool = False


class Fleet:
    """``__init__`` only assigns; use :meth:`start`."""

    def __init__(
        self,
        settings: FleetSettings,
        hub: Hub,
        devices: dict[str, EdgeDevice],
        certs: CertificateSet,
        notes: tuple[str, ...],
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.devices = devices
        self.certs = certs
        self.notes = notes  # what the start did not do as asked, and why

    @classmethod
    async def start(cls, settings: FleetSettings, commands: ModuleCommands) -> Fleet:
        state = HubState.load(settings.state_dir, settings.hub_host_name)
        async with contextlib.AsyncExitStack() as undo:
            undo.callback(state.close)
            for spec in settings.devices:
                _ensure_device(state, spec)
            addresses = _device_addresses(state, settings)
            names = [settings.address, "localhost", *addresses.values(), *settings.extra_cert_names]
            certs = ensure_certificates(settings.state_dir / "certs", names)
            endpoint = ServiceEndpoint(settings.address, settings.service_port)
            hub = await Hub.start(state, endpoint, certs.server_ssl_context())
            undo.pop_all()  # the hub owns the state now
            undo.push_async_callback(hub.stop)
            notes = tuple(
                note
                for startup in settings.startup
                if (note := _create_startup(state, startup, settings.redeploy_startup))
            )
            devices: dict[str, EdgeDevice] = {}
            for spec in settings.devices:
                device_settings = DeviceSettings(
                    device_id=spec.device_id,
                    address=addresses[spec.device_id],
                    state_dir=settings.state_dir / DEVICES_DIR / spec.device_id,
                    ca_file=certs.ca_cert_path,
                    stop_grace_s=settings.module_stop_grace_s,
                    echo_output=settings.echo_module_output,
                    skip_unmapped=settings.skip_unmapped_modules,
                    report_interval_s=settings.report_interval_s,
                )
                device = await EdgeDevice.start(
                    device_settings,
                    DeviceLink(state, spec.device_id),
                    certs,
                    commands(device_settings),
                )
                devices[spec.device_id] = device
                undo.push_async_callback(device.stop)
            undo.pop_all()
        fleet = cls(settings, hub, devices, certs, notes)
        log.info(
            "fleet up: service %s, %d device(s) from %s",
            hub.service_api.host_name,
            len(devices),
            min(addresses.values(), default="-"),
        )
        return fleet

    async def stop(self) -> None:
        try:
            for device in reversed(list(self.devices.values())):
                try:
                    await device.stop()
                finally:
                    device.kill_now()
        finally:
            await self.hub.stop()

    def kill_now(self) -> None:
        """Synchronous SIGKILL of every module of every device: a finalizer's safety net."""
        for device in self.devices.values():
            device.kill_now()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what tools and tests need ----------------------------------------------------------

    @property
    def state(self) -> HubState:
        return self.hub.state

    @property
    def ca_path(self) -> Path:
        return self.certs.ca_cert_path

    def hub_connection_string(self) -> str:
        return self.hub.connection_string()

    def device(self, device_id: str) -> EdgeDevice:
        device = self.devices.get(device_id)
        if device is None:
            raise SimulatorError(f"device {device_id!r} does not run in this fleet")
        return device

    async def deploy(self, device_id: str, manifest: Mapping[str, Any]) -> None:
        """Apply a whole manifest (``{"modulesContent": ...}``) to one device, as
        ``applyConfigurationContent`` does, and wait for its runtime to act on it; raises
        what the hub or the device refused."""
        content = manifest.get("modulesContent")
        if not isinstance(content, dict):
            raise SimulatorError("modulesContent must be a JSON object")
        device = self.device(device_id)
        self.state.apply_content(device_id, content)
        await device.agent.settled()
        status = self.state.twins.reported(device_id, "$edgeAgent").get("lastDesiredStatus")
        if isinstance(status, dict) and status.get("code") != 200:
            raise SimulatorError(
                f"{device_id} did not apply the deployment: {status.get('description')}"
            )

    async def settled(self) -> None:
        """Every device has acted on what its twins hold now."""
        for device in self.devices.values():
            await device.agent.settled()


def _ensure_device(state: HubState, spec: DeviceSpec) -> None:
    tags: JsonObject = dict(spec.tags)
    existing = state.registry.get_device(spec.device_id)
    if existing is None:
        state.create_device(spec.device_id, DeviceFields(edge=True), tags)
    elif not existing.is_edge:
        raise SimulatorError(f"device {spec.device_id!r} exists and is not an IoT Edge device")
    elif tags:
        state.twins.update(spec.device_id, DEVICE_TWIN, tags_patch=tags)


def _device_addresses(state: HubState, settings: FleetSettings) -> dict[str, str]:
    """Each device's loopback address: the one it had (modules hold it in their connection
    strings), else the next free one from the fleet's address up."""
    saved = {
        key[0]: str(doc["address"]) for key, doc in state.database.load(EDGE_ENDPOINTS).items()
    }
    taken = set(saved.values())
    candidate = ipaddress.IPv4Address(settings.address)
    addresses: dict[str, str] = {}
    for spec in settings.devices:
        if spec.device_id in saved:
            addresses[spec.device_id] = saved[spec.device_id]
            continue
        while str(candidate) in taken or str(candidate).endswith((".0", ".255")):
            candidate += 1
        if not candidate.is_loopback:
            raise SimulatorError(f"no loopback address left for {spec.device_id}")
        address = str(candidate)
        taken.add(address)
        addresses[spec.device_id] = address
        state.database.put(EDGE_ENDPOINTS, (spec.device_id,), {"address": address})
    return addresses


def _create_startup(state: HubState, startup: StartupDeployment, redeploy: bool) -> str | None:
    """Create the deployment unless the hub holds it (``redeploy``: create it again, which
    rewrites the twins of every device it targets); returns a note when one that differs is
    kept."""
    body: JsonObject = {
        "id": startup.config_id,
        "content": {"modulesContent": startup.content},
        "targetCondition": startup.target_condition,
        "priority": startup.priority,
        "labels": {"createdBy": "simulator"},
    }
    if startup.config_id in state.configurations.ids():
        existing = state.configurations.get(startup.config_id)
        same = all(existing.get(k) == body[k] for k in ("content", "targetCondition", "priority"))
        if not redeploy:
            if same:
                return None
            return (
                f"deployment {startup.config_id} from an earlier run differs from this start's "
                "and was kept, with the deployments made since (redeploy replaces it)"
            )
        state.delete_configuration(startup.config_id, "*")
    state.put_configuration(startup.config_id, body, None)
    return None
