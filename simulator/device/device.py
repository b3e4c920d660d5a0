"""One simulated IoT Edge device: its edgeHub endpoint, workload API, runtime and agent (with
edgeAgent's built-in direct methods, which the hub reaches through ``DeviceEndpoint``).

Start order matters: the edgeHub MQTT endpoint and the workload API first, then the agent,
which reconciles the deployment the device's twins hold, and the runtime starts modules that
connect to both the moment they run. Stop runs in reverse.

Each device listens on its own loopback address: the SDK dials port 8883 and nothing else,
so devices side by side differ by address (127.0.0.1, 127.0.0.2, ...), as real devices differ
by host. Nothing listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from simulator.certs import CertificateSet
from simulator.deployment.manifest import DeploymentManifest
from simulator.deployment.routes import Router
from simulator.device.agent import EDGE_AGENT, EdgeAgent
from simulator.device.agent_methods import AgentMethods, BlobLogUploader, DeviceEndpoint
from simulator.device.edgehub import EdgeHub
from simulator.device.runtime import (
    EdgeRuntimeSettings,
    LocalRuntime,
    ModuleBackend,
    ModuleCommand,
    ProcessBackend,
)
from simulator.device.workload_api import WorkloadApi
from simulator.hub.device_link import DeviceLink
from simulator.methods import LoopbackTransport, in_process_dispatcher
from simulator.mqtt import MqttServer
from simulator.mqtt.session_store import SessionStore

log = logging.getLogger(__name__)

MQTT_PORT = 8883
WORKLOAD_SOCKET = "workload.sock"
SESSIONS_FILE = "sessions.sqlite"
# What RestartModule allows a module to start again, beyond the stop grace period.
_RESTART_START_S = 10.0


@dataclass(frozen=True)
class DeviceSettings:
    device_id: str
    address: str  # the gateway: the modules' GatewayHostName
    state_dir: Path  # this device's own folder (module logs, volumes, workload socket)
    ca_file: Path  # what modules trust for the gateway (and the local Blob Storage)
    mqtt_port: int = MQTT_PORT
    stop_grace_s: float = 10.0
    echo_output: bool = False
    # Tests connect some modules themselves: those need no local command.
    skip_unmapped: bool = False
    report_interval_s: float = 1.0


# What runs a device's modules, per device (each device has its own folders, e.g. the
# classifier's model cache volume): a backend, or a mapping from module name to a local
# command, shorthand for the process backend with the device's echo and skip settings.
DeviceModules = Mapping[str, ModuleCommand] | ModuleBackend
ModuleCommands = Callable[[DeviceSettings], DeviceModules]


class EdgeDevice:
    """``__init__`` only assigns; use :meth:`start`."""

    def __init__(
        self,
        settings: DeviceSettings,
        link: DeviceLink,
        sessions: SessionStore,
        edgehub: EdgeHub,
        mqtt: MqttServer,
        workload_api: WorkloadApi,
        runtime: LocalRuntime,
        agent: EdgeAgent,
        agent_methods: AgentMethods,
        agent_transport: LoopbackTransport,
        detach: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.link = link
        self.sessions = sessions
        self.edgehub = edgehub
        self.mqtt = mqtt
        self.workload_api = workload_api
        self.runtime = runtime
        self.agent = agent
        self.agent_methods = agent_methods
        self._agent_transport = agent_transport
        self._detach = detach

    @classmethod
    async def start(
        cls,
        settings: DeviceSettings,
        link: DeviceLink,
        certs: CertificateSet,
        modules: DeviceModules,
    ) -> EdgeDevice:
        async with contextlib.AsyncExitStack() as undo:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            # Persistent sessions survive a restart, as edgeHub's do (mqtt/session_store.py).
            sessions = SessionStore.open(settings.state_dir / SESSIONS_FILE)
            undo.callback(sessions.close)
            edgehub = EdgeHub(link, Router([]), sessions)
            undo.callback(edgehub.close)
            mqtt = MqttServer(edgehub, certs.server_ssl_context(), store=sessions)
            edgehub.attach(mqtt)
            await mqtt.start(settings.address, settings.mqtt_port)
            undo.push_async_callback(mqtt.stop)
            workload_api = WorkloadApi(link, lambda: certs.ca_pem)
            workload_uri = await workload_api.start_unix(settings.state_dir / WORKLOAD_SOCKET)
            undo.push_async_callback(workload_api.stop)
            runtime = LocalRuntime(
                EdgeRuntimeSettings(
                    iothub_hostname=link.hub_host_name,
                    device_id=settings.device_id,
                    gateway_hostname=settings.address,
                    workload_uri=workload_uri,
                ),
                _backend(settings, modules),
                state_dir=settings.state_dir / "runtime",
                stop_grace_s=settings.stop_grace_s,
                generation_id_for=lambda m: link.ensure_module(m).generation_id,
                on_module_removed=link.remove_module,
            )
            undo.callback(runtime.kill_now)
            undo.push_async_callback(runtime.stop)
            agent_methods = AgentMethods(
                runtime,
                BlobLogUploader(link.hub_host_name, settings.device_id, settings.ca_file),
                iothub=link.hub_host_name,
                device_id=settings.device_id,
                restart_timeout_s=settings.stop_grace_s + _RESTART_START_S,
            )
            undo.push_async_callback(agent_methods.close)
            agent_calls, agent_transport = in_process_dispatcher()
            agent_transport.register(settings.device_id, EDGE_AGENT, agent_methods.handle)
            undo.push_async_callback(agent_transport.close)
            detach = link.attach(DeviceEndpoint(edgehub, agent_calls))
            undo.callback(detach)
            agent = EdgeAgent(link, runtime, edgehub, settings.report_interval_s)
            await agent.start()
            undo.pop_all()
        device = cls(
            settings,
            link,
            sessions,
            edgehub,
            mqtt,
            workload_api,
            runtime,
            agent,
            agent_methods,
            agent_transport,
            detach,
        )
        log.info(
            "device %s up: edgeHub %s:%d", settings.device_id, settings.address, settings.mqtt_port
        )
        return device

    @property
    def device_id(self) -> str:
        return self.settings.device_id

    @property
    def address(self) -> str:
        return self.settings.address

    @property
    def manifest(self) -> DeploymentManifest | None:
        """The deployment the device runs (None before its first)."""
        return self.agent.manifest

    async def stop(self) -> None:
        try:
            # edgeAgent's methods end first: a log upload must not read a module being stopped.
            self._agent_transport.unregister(self.device_id, EDGE_AGENT)
            await self._agent_transport.close()
            await self.agent_methods.close()
            await self.agent.stop()  # stops the modules, then reports the agent gone
        finally:
            self.runtime.kill_now()  # a no-op unless stopping failed
            self._detach()
            await self.workload_api.stop()
            await self.mqtt.stop()
            self.edgehub.close()
            self.sessions.close()

    def kill_now(self) -> None:
        self.runtime.kill_now()

    def module_connection_string(self, module_id: str) -> str:
        """A module's development connection string (creating its identity if need be)."""
        return self.link.module_connection_string(module_id, self.address)

    def module_environment(self, module_id: str) -> dict[str, str]:
        """The development-path environment (as iotedgehubdev gives): connection string + CA."""
        return {
            "EdgeHubConnectionString": self.module_connection_string(module_id),
            "EdgeModuleCACertificateFile": str(self.settings.ca_file),
        }


def _backend(settings: DeviceSettings, modules: DeviceModules) -> ModuleBackend:
    if isinstance(modules, Mapping):
        return ProcessBackend(
            modules, echo_output=settings.echo_output, skip_unmapped=settings.skip_unmapped
        )
    return modules
