"""The whole simulator: one IoT Hub, one IoT Edge device, its edgeHub and its runtime.

Start order matters: identities and certificates first (the servers need them), then the
edgeHub MQTT endpoint, the service API and the workload API, and only then the runtime, whose
modules connect to all three the moment they start. Stop runs in reverse.

Everything listens on loopback only. The edgeHub endpoint must be on port 8883 (the SDK does
not let modules pick another), so simulators side by side use different 127.x addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.certs import CertificateSet, ensure_certificates
from simulator.deployment.manifest import DeploymentManifest, ManifestError, parse_manifest
from simulator.deployment.routes import Router, parse_routes
from simulator.device.edgehub import EdgeHub
from simulator.device.runtime import EdgeRuntimeSettings, LocalRuntime, ModuleCommand
from simulator.device.workload_api import WorkloadApi
from simulator.errors import HubError, SimulatorError
from simulator.hub.configurations import ConfigurationStore
from simulator.hub.registry import Registry
from simulator.hub.service_api import ServiceApi
from simulator.hub.twins import TwinStore
from simulator.hub.upstream import UpstreamStore
from simulator.jsondoc import JsonObject
from simulator.mqtt import MqttServer

log = logging.getLogger(__name__)

MQTT_PORT = 8883


@dataclass(frozen=True)
class SimulatorSettings:
    state_dir: Path
    address: str = "127.0.0.1"  # the gateway: edgeHub MQTT, and the service API
    hub_host_name: str = "simulated-hub.azure-devices.net"
    device_id: str = "edge-device"
    mqtt_port: int = MQTT_PORT
    service_port: int = 0  # 0: any free port; the connection string says which
    echo_module_output: bool = False
    module_stop_grace_s: float = 10.0
    extra_cert_names: tuple[str, ...] = field(default_factory=tuple)
    # Tests connect some modules themselves: those need no local command.
    skip_unmapped_modules: bool = False


class Simulator:
    """``__init__`` only assigns; ``start`` does the I/O."""

    def __init__(
        self, settings: SimulatorSettings, commands: Mapping[str, ModuleCommand] | None = None
    ) -> None:
        self.settings = settings
        self.commands = dict(commands or {})
        self.registry: Registry | None = None
        self.certs: CertificateSet | None = None
        self.twins = TwinStore()
        self.configurations = ConfigurationStore()
        self.upstream: UpstreamStore | None = None
        self.edgehub: EdgeHub | None = None
        self.mqtt: MqttServer | None = None
        self.service_api: ServiceApi | None = None
        self.workload_api: WorkloadApi | None = None
        self.runtime: LocalRuntime | None = None
        self.workload_uri = ""
        self.manifest: DeploymentManifest | None = None

    async def start(self, manifest: Mapping[str, Any] | None = None) -> None:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry.load_or_create(s.state_dir, s.hub_host_name)
        if self.registry.get_device(s.device_id) is None:
            self.registry.add_device(s.device_id, edge=True)
        self.certs = ensure_certificates(
            s.state_dir / "certs", [s.address, "localhost", *s.extra_cert_names]
        )
        self.upstream = UpstreamStore.open(s.state_dir / "upstream.sqlite")
        self.edgehub = EdgeHub(self.registry, self.twins, self.upstream, Router([]))
        self.mqtt = MqttServer(self.edgehub, self.certs.server_ssl_context())
        self.edgehub.attach(self.mqtt)
        await self.mqtt.start(s.address, s.mqtt_port)
        self.service_api = ServiceApi(
            self.registry,
            self.twins,
            self.configurations,
            self.edgehub.methods,
            on_apply_content=self._apply_content,
            is_connected=lambda d, m: self.mqtt is not None and self.mqtt.is_connected(f"{d}/{m}"),
        )
        await self.service_api.start(s.address, self.certs.server_ssl_context(), s.service_port)
        self.workload_api = WorkloadApi(self.registry, s.device_id, lambda: self._ca_pem())
        self.workload_uri = await self.workload_api.start_unix(s.state_dir / "workload.sock")
        self.runtime = LocalRuntime(
            EdgeRuntimeSettings(
                iothub_hostname=s.hub_host_name,
                device_id=s.device_id,
                gateway_hostname=s.address,
                workload_uri=self.workload_uri,
            ),
            self.commands,
            state_dir=s.state_dir / "runtime",
            stop_grace_s=s.module_stop_grace_s,
            echo_output=s.echo_module_output,
            skip_unmapped=s.skip_unmapped_modules,
            generation_id_for=lambda m: self._module_identity(m),
        )
        if manifest is not None:
            await self.deploy(manifest)
        log.info(
            "simulator up: edgeHub %s:%d, service %s",
            s.address,
            s.mqtt_port,
            self.service_api.host_name,
        )

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        for server in (self.workload_api, self.service_api):
            if server is not None:
                await server.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.edgehub is not None:
            self.edgehub.close()
        if self.upstream is not None:
            self.upstream.close()

    async def __aenter__(self) -> Simulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- deployments ----------------------------------------------------------------------

    async def deploy(self, manifest: Mapping[str, Any]) -> None:
        """Apply a whole deployment manifest (``{"modulesContent": ...}``), as IoT Hub would."""
        content = manifest.get("modulesContent")
        if not isinstance(content, dict):
            raise ManifestError(["modulesContent must be a JSON object"])
        await self._apply_content(self.settings.device_id, content)

    async def _apply_content(self, device_id: str, content: JsonObject) -> None:
        if device_id != self.settings.device_id:
            raise HubError(
                404, "DeviceNotFound", f"this simulator runs device {self.settings.device_id!r}"
            )
        try:
            parsed = parse_manifest({"modulesContent": content})
            router = Router(parse_routes(parsed.routes))
        except SimulatorError as e:
            # Refused whole: nothing below has changed yet.
            raise HubError(400, "ArgumentInvalid", f"invalid deployment: {e}") from e
        # Twins validate the whole content before setting any, so they go before the new
        # identities: a deployment refused for a bad desired property must leave none behind.
        self.twins.apply_modules_content(device_id, content)
        for name in parsed.modules:
            self._module_identity(name)
        assert self.edgehub is not None
        assert self.runtime is not None
        self.edgehub.router = router
        first = self.manifest is None
        self.manifest = parsed
        result = await (self.runtime.start(parsed) if first else self.runtime.apply(parsed))
        log.info("deployment applied: %s", result)

    def _module_identity(self, module_id: str) -> str:
        assert self.registry is not None
        return self.registry.add_module(self.settings.device_id, module_id).generation_id

    # -- what tools and tests need ----------------------------------------------------------

    def _ca_pem(self) -> str:
        assert self.certs is not None
        return self.certs.ca_pem

    @property
    def ca_path(self) -> Path:
        assert self.certs is not None
        return self.certs.ca_cert_path

    def hub_connection_string(self) -> str:
        assert self.service_api is not None
        return self.service_api.connection_string()

    def module_connection_string(self, module_id: str) -> str:
        assert self.registry is not None
        self._module_identity(module_id)
        return self.registry.module_connection_string(
            self.settings.device_id, module_id, self.settings.address
        )

    def module_environment(self, module_id: str) -> dict[str, str]:
        """The development-path environment (as iotedgehubdev gives): connection string + CA."""
        return {
            "EdgeHubConnectionString": self.module_connection_string(module_id),
            "EdgeModuleCACertificateFile": str(self.ca_path),
        }
