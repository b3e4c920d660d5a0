# mypy: disallow-untyped-calls=False
"""Shared pieces of the end-to-end tests: a whole simulator, real SDK clients, deployments.

Everything here runs on the test's own event loop, which also runs the simulator. So nothing
may block that loop on the simulator: the device SDK's handler setters wait for a SUBACK (use
``set_handler``), and the service SDK is synchronous (call it through ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device.aio import IoTHubModuleClient
from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager

from cloud_tools.genconfig import device_manifest
from cloud_tools.genconfig.environment import IOTEDGEDEV_DEFAULTS
from simulator.device.device import ModuleCommands
from simulator.device.runtime import ModuleCommand
from simulator.fleet import DeviceSpec, Fleet, FleetSettings
from simulator.hub.upstream import MessageFilter, StoredMessage
from simulator.local.startup import base_only
from simulator.mqtt.testing import eventually, random_loopback_host

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "deployment.template.json"
CAMERA_LAYER = REPO_ROOT / "layered.camera.template.json"
GENCONFIG_ENV = {
    **IOTEDGEDEV_DEFAULTS,
    "CONTAINER_REGISTRY_SERVER": "registry.invalid",
    "CONTAINER_REGISTRY_USERNAME": "user",
    "CONTAINER_REGISTRY_PASSWORD": "password",
}
DEVICE = "edge-device"  # the fleet's default device id
# Tests wait on the agent's reports; a short interval keeps them quick.
REPORT_INTERVAL_S = 0.2

# Sockets the client libraries leak, which would otherwise fail tests run with -W error:
# after a dropped connection the SDK stops paho's loop without closing paho's wake-up socket
# pair (azure mqtt_transport._force_transport_disconnect_and_cleanup), and paho 1.6.1's
# reconnect() does not close its TLS socket when the handshake fails. ``module_client``
# collects garbage on exit so these surface inside the test that caused them.
SDK_SOCKET_LEAK = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <(socket\.socket|ssl\.SSLSocket)"
    ":pytest.PytestUnraisableExceptionWarning"
)


def template_manifest() -> dict[str, Any]:
    """The repository's own deployment as genconfig generates it: the base (classifier) and
    the demo camera layer (framesource and its route), composed as IoT Hub would."""
    return device_manifest(TEMPLATE, [CAMERA_LAYER], "amd64", GENCONFIG_ENV)


def deployment(
    *,
    routes: Mapping[str, str] | None = None,
    desired: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The template's deployment with other routes and/or module desired properties.

    Starting from the generated template keeps every variant schema-valid without repeating
    the system modules' boilerplate in each test.
    """
    manifest = copy.deepcopy(template_manifest())
    content = manifest["modulesContent"]
    if routes is not None:
        content["$edgeHub"]["properties.desired"]["routes"] = dict(routes)
    for module_id, properties in (desired or {}).items():
        content[module_id] = {"properties.desired": dict(properties)}
    return manifest


def route_to_input(source_module: str, output: str, module: str, input_name: str) -> str:
    return (
        f"FROM /messages/modules/{source_module}/outputs/{output} "
        f'INTO BrokeredEndpoint("/modules/{module}/inputs/{input_name}")'
    )


Commands = Mapping[str, ModuleCommand] | ModuleCommands | None


def module_commands(commands: Commands) -> ModuleCommands:
    if commands is None or isinstance(commands, Mapping):
        fixed = dict(commands or {})
        return lambda _device: fixed
    return commands


def fleet_settings(
    state_dir: Path,
    manifest: Mapping[str, Any] | None,
    devices: tuple[DeviceSpec, ...] = (DeviceSpec(DEVICE),),
) -> FleetSettings:
    return FleetSettings(
        state_dir=state_dir,
        address=random_loopback_host(),
        devices=devices,
        startup=base_only(manifest) if manifest is not None else (),
        skip_unmapped_modules=True,
        module_stop_grace_s=5.0,
        report_interval_s=REPORT_INTERVAL_S,
    )


def short_state_dir() -> Path:
    """Short and outside pytest's tmp_path: the workload API's unix socket path must stay
    under the ~108-byte limit."""
    return Path(tempfile.mkdtemp(prefix="e2e-", dir="/tmp"))


@asynccontextmanager
async def running_fleet(settings: FleetSettings, commands: Commands = None) -> AsyncIterator[Fleet]:
    """A started fleet; stopped (modules and all) on exit. The state directory stays."""
    fleet = await Fleet.start(settings, module_commands(commands))
    try:
        yield fleet
    finally:
        try:
            await fleet.stop()
        finally:
            fleet.kill_now()  # a no-op unless stop() itself failed


@asynccontextmanager
async def running_simulator(
    manifest: Mapping[str, Any] | None, commands: Commands = None
) -> AsyncIterator[Fleet]:
    """A fleet of one device (``DEVICE``) on its own 127.x address, ``manifest`` its base
    deployment; stopped and its state removed on exit.

    ``commands`` may be a function of the device's settings, for modules that keep their
    data in the device's folder (``simulator.local.modules.repo_module_commands``).
    """
    state_dir = short_state_dir()
    try:
        async with running_fleet(fleet_settings(state_dir, manifest), commands) as fleet:
            yield fleet
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def client_id(module_id: str) -> str:
    return f"{DEVICE}/{module_id}"


@asynccontextmanager
async def module_client(
    sim: Fleet,
    module_id: str,
    *,
    connection_string: str | None = None,
    ca_pem: str | None = None,
    device_id: str = DEVICE,
) -> AsyncIterator[Any]:
    """An azure-iot-device module client for ``module_id``, always shut down on exit."""
    device = sim.device(device_id)
    client = IoTHubModuleClient.create_from_connection_string(
        connection_string or device.module_connection_string(module_id),
        server_verification_cert=ca_pem if ca_pem is not None else sim.ca_path.read_text(),
        # Only matters when a reconnect fails; the first one after a drop is immediate.
        connection_retry_interval=1,
    )
    try:
        yield client
    finally:
        await client.shutdown()
        del client
        gc.collect()  # see SDK_SOCKET_LEAK


async def set_handler(client: Any, name: str, handler: Callable[..., Any] | None) -> None:
    """Set an SDK handler property without blocking the loop the simulator runs on.

    The setter waits (on the calling thread) until the SDK has subscribed, and the SUBACK
    can only come from this loop.
    """
    await asyncio.to_thread(setattr, client, name, handler)


class Inbox:
    """Collects what an SDK handler receives. The SDK calls it on its own thread; appends
    to a list are atomic in CPython, and the test only reads."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    async def handler(self, item: Any) -> None:
        self.items.append(item)

    async def wait_for(self, count: int, timeout_s: float = 15.0, what: str = "") -> list[Any]:
        await eventually(
            lambda: len(self.items) >= count, timeout_s, what or f"{count} item(s) at the handler"
        )
        return self.items[:count]


async def wait_upstream(
    sim: Fleet,
    count: int,
    *,
    module_id: str | None = None,
    output_name: str | None = None,
    timeout_s: float = 15.0,
) -> list[StoredMessage]:
    """Wait until ``count`` messages matching the filter are upstream; return them all."""
    where = MessageFilter(module_id=module_id, output_name=output_name)
    store = sim.state.upstream
    await eventually(
        lambda: len(store.read(where=where)) >= count,
        timeout_s,
        f"{count} upstream message(s) from {module_id}/{output_name}",
    )
    return store.read(where=where)


def trust_simulator(monkeypatch: pytest.MonkeyPatch, sim: Fleet) -> None:
    """azure-iot-hub (msrest, requests) trusts a custom CA only through REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_path))


async def registry_manager(sim: Fleet) -> Any:
    return await asyncio.to_thread(
        IoTHubRegistryManager.from_connection_string, sim.hub_connection_string()
    )


async def configuration_manager(sim: Fleet) -> Any:
    return await asyncio.to_thread(
        IoTHubConfigurationManager.from_connection_string, sim.hub_connection_string()
    )
