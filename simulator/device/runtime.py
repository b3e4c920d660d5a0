"""The simulated runtime in edgeAgent's role: runs a deployment's modules through a backend.

Two backends create modules: local process groups (``ProcessBackend``, a local command per
module name standing in for its image) and containers (``ContainerBackend``, the module's
image pulled and run through the Docker Engine API as edgeAgent runs it). The runtime gives
every module the environment edgeAgent gives a container (``IOTEDGE_*``, ``RuntimeLogLevel``,
the manifest's ``env``), restarts it under its restartPolicy (see ``BackoffPolicy``, in
``supervisor.py``, the same for both backends), and reconciles on a new manifest
(``applyConfigurationContent``): added modules start, removed ones stop, changed ones are
recreated, unchanged ones are left alone.

The system modules (edgeAgent, edgeHub) are never started: the simulator itself plays them.

Typical use, with the identity registry owning generation ids as IoT Hub does::

    runtime = LocalRuntime(
        settings,
        ProcessBackend({"classifier": ModuleCommand([sys.executable, "-m", "classifier"])}),
        state_dir=state_dir,
        generation_id_for=lambda m: registry.add_module(device_id, m).generation_id,
        on_module_removed=lambda m: registry.remove_module(device_id, m),
    )
    await runtime.start(load_manifest(path))
    await runtime.apply(new_manifest)  # on applyConfigurationContent
    await runtime.restart_module("classifier")  # edgeAgent's RestartModule method
    lines = await runtime.module_logs("classifier", since, None, 100)  # GetModuleLogs
    await runtime.stop()
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from simulator.deployment.manifest import (
    DeploymentManifest,
    DesiredStatus,
    ModuleSpec,
    split_create_options,
)
from simulator.device.process_backend import ModuleCommand, ProcessBackend, process_environment
from simulator.device.supervisor import (
    BackoffPolicy,
    LaunchError,
    LogLine,
    ModuleInstance,
    ModuleReport,
    ModuleSupervisor,
    RuntimeStatus,
)
from simulator.errors import SimulatorError

__all__ = [
    "WORKLOAD_API_VERSION",
    "BackoffPolicy",
    "EdgeRuntimeSettings",
    "LocalRuntime",
    "LocalRuntimeError",
    "LogLine",
    "ModuleBackend",
    "ModuleCommand",
    "ModuleReport",
    "ProcessBackend",
    "ReconcileResult",
    "RuntimeStatus",
    "module_environment",
    "new_generation_id",
    "runtime_environment",
]

_log = logging.getLogger(__name__)

# aziot-edged's workload API version; the device SDK sends it back on every workload call.
WORKLOAD_API_VERSION = "2022-08-03"
# docker stop's default grace period before SIGKILL.
DEFAULT_STOP_GRACE_S = 10.0

GenerationListener = Callable[[str, str], None]
GenerationSource = Callable[[str], str]
RemovalListener = Callable[[str], None]


class LocalRuntimeError(SimulatorError):
    """The runtime cannot do what was asked. A manifest it cannot run is refused before any
    module is touched."""


class ModuleBackend(Protocol):
    """What creates modules: local process groups or containers."""

    @property
    def kind(self) -> str: ...

    def refusal(self, manifest: DeploymentManifest) -> str | None:
        """Why ``manifest`` cannot run on this backend at all, or None."""
        ...

    def idle_reason(self, spec: ModuleSpec) -> str | None:
        """Why a module the manifest wants running is not started, or None."""
        ...

    def create(
        self, spec: ModuleSpec, runtime_env: Mapping[str, str], manifest: DeploymentManifest
    ) -> ModuleInstance: ...


@dataclass(frozen=True)
class EdgeRuntimeSettings:
    """What edgeAgent knows about the device, handed to every module."""

    iothub_hostname: str
    device_id: str
    gateway_hostname: str
    workload_uri: str
    api_version: str = WORKLOAD_API_VERSION
    runtime_log_level: str = "info"


@dataclass(frozen=True)
class ReconcileResult:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    recreated: tuple[str, ...]
    unchanged: tuple[str, ...]


def new_generation_id() -> str:
    # IoT Hub generation ids are 18-digit decimal strings.
    return str(10**17 + secrets.randbelow(9 * 10**17))


def runtime_environment(
    settings: EdgeRuntimeSettings, spec: ModuleSpec, generation_id: str
) -> dict[str, str]:
    """The variables a module gets from its deployment and the runtime, in edgeAgent's
    layering: createOptions ``Env``, then the manifest's ``env``, then the runtime's own
    variables (edgeAgent appends them last, so a manifest cannot spoof an identity)."""
    env: dict[str, str] = {}
    for entry in spec.create_options.get("Env") or []:
        name, sep, value = str(entry).partition("=")
        if sep:
            env[name] = value
    env.update(spec.env)
    env.update(
        {
            "IOTEDGE_IOTHUBHOSTNAME": settings.iothub_hostname,
            "IOTEDGE_DEVICEID": settings.device_id,
            "IOTEDGE_MODULEID": spec.name,
            "IOTEDGE_GATEWAYHOSTNAME": settings.gateway_hostname,
            "IOTEDGE_MODULEGENERATIONID": generation_id,
            "IOTEDGE_WORKLOADURI": settings.workload_uri,
            "IOTEDGE_APIVERSION": settings.api_version,
            "IOTEDGE_AUTHSCHEME": "sasToken",
            "RuntimeLogLevel": settings.runtime_log_level,
        }
    )
    return env


def module_environment(
    settings: EdgeRuntimeSettings,
    spec: ModuleSpec,
    generation_id: str,
    command: ModuleCommand,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a module process gets: the inherited ``base`` under the runtime's
    variables, and the command's extras over everything."""
    return process_environment(runtime_environment(settings, spec, generation_id), command, base)


class LocalRuntime:
    """Runs a deployment's modules through a backend. Not thread-safe: one event loop.

    Each (re)created module gets a generation id from ``generation_id_for`` (for instance the
    identity registry's, which like IoT Hub keeps one per module identity), or a fresh one
    when none is given; ``on_module_created`` hears it before the module starts, and
    ``on_module_removed`` hears of modules a new manifest drops. A restart under the restart
    policy is not a re-creation and keeps the id.
    """

    def __init__(
        self,
        settings: EdgeRuntimeSettings,
        backend: ModuleBackend,
        *,
        state_dir: Path,
        backoff: BackoffPolicy | None = None,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        on_module_created: GenerationListener | None = None,
        on_module_removed: RemovalListener | None = None,
        generation_id_for: GenerationSource | None = None,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._state_dir = state_dir
        self._backoff = backoff or BackoffPolicy()
        self._stop_grace_s = stop_grace_s
        self._on_created = on_module_created
        self._on_removed = on_module_removed
        self._generation_id_for = generation_id_for or (lambda _module: new_generation_id())
        self._manifest: DeploymentManifest | None = None
        self._specs: dict[str, ModuleSpec] = {}
        self._procs: dict[str, ModuleSupervisor] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def manifest(self) -> DeploymentManifest | None:
        return self._manifest

    @property
    def backend(self) -> ModuleBackend:
        return self._backend

    @property
    def logs_dir(self) -> Path:
        return self._state_dir / "logs"

    def log_path(self, module: str) -> Path:
        return self.logs_dir / f"{module}.log"

    def instance(self, module: str) -> ModuleInstance | None:
        """What runs ``module`` now (None when the manifest has it stopped or unmapped)."""
        supervisor = self._procs.get(module)
        return supervisor.instance if supervisor is not None else None

    async def start(self, manifest: DeploymentManifest) -> ReconcileResult:
        """Start every running module of ``manifest`` in startupOrder."""
        if self._manifest is not None:
            raise LocalRuntimeError("already started; use apply() for a new manifest")
        return await self.apply(manifest)

    async def apply(self, manifest: DeploymentManifest) -> ReconcileResult:
        """Reconcile the running modules with ``manifest``."""
        async with self._lock:
            if self._closed:
                raise LocalRuntimeError("the runtime has been stopped")
            refusal = self._backend.refusal(manifest)
            if refusal is not None:
                raise LocalRuntimeError(refusal)
            old, new = self._specs, dict(manifest.modules)
            added = [n for n in new if n not in old]
            removed = [n for n in old if n not in new]
            recreated = [n for n in new if n in old and not new[n].same_definition(old[n])]
            unchanged = [n for n in new if n in old and n not in recreated]
            # Stop before starting: two processes with one module identity would keep
            # taking each other's edgeHub connection away.
            await self._stop_modules([*removed, *recreated])
            for name in removed:
                if self._on_removed is not None:
                    self._on_removed(name)
            self._specs = new
            self._manifest = manifest
            start = set(added) | set(recreated)
            for spec in manifest.modules_in_startup_order():
                if spec.name in start:
                    await self._create(spec, manifest)
            result = ReconcileResult(
                tuple(added), tuple(removed), tuple(recreated), tuple(unchanged)
            )
            _log.info("reconciled: %s", result)
            return result

    async def restart_module(self, module: str) -> None:
        """Stop ``module`` and start it again (edgeAgent's ``RestartModule``)."""
        supervisor = self._procs.get(module)
        if supervisor is None:
            raise LocalRuntimeError(f"module {module!r} is not running on this device")
        try:
            await supervisor.restart()
        except LaunchError as e:
            raise LocalRuntimeError(str(e)) from e

    def module_names(self) -> list[str]:
        """The current deployment's modules (system modules aside), in manifest order."""
        return list(self._specs)

    async def module_logs(
        self, module: str, since: datetime | None, until: datetime | None, tail: int | None
    ) -> list[LogLine]:
        """What ``module`` wrote (see ``ModuleInstance.read_logs``); nothing for a module of
        the deployment that was never started."""
        supervisor = self._procs.get(module)
        if supervisor is not None:
            return await supervisor.instance.read_logs(since, until, tail)
        if module in self._specs:
            return []
        raise LocalRuntimeError(f"module {module!r} is not in this device's deployment")

    async def stop(self) -> None:
        """Stop every module (SIGTERM, SIGKILL after the grace period). Idempotent."""
        async with self._lock:
            self._closed = True
            # The stopped modules stay listed so their final reports can still be read.
            await self._stop_modules(list(self._procs), forget=False)

    def kill_now(self) -> None:
        """Synchronous kill of every module: a finalizer's safety net."""
        for proc in self._procs.values():
            proc.kill_now()

    async def __aenter__(self) -> LocalRuntime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def module_reports(self) -> dict[str, ModuleReport]:
        """Every module of the current manifest, started or not."""
        reports: dict[str, ModuleReport] = {}
        for name, spec in self._specs.items():
            proc = self._procs.get(name)
            reports[name] = proc.report() if proc is not None else self._idle_report(spec)
        return reports

    def reported_modules(self) -> dict[str, dict[str, Any]]:
        """The ``modules`` section of edgeAgent's reported properties (plus pid, generationId)."""
        reported: dict[str, dict[str, Any]] = {}
        for name, report in self.module_reports().items():
            spec = self._specs[name]
            entry: dict[str, Any] = {
                "type": "docker",
                "status": str(spec.status),
                "restartPolicy": str(spec.restart_policy),
                "settings": {"image": spec.image, **split_create_options(spec.create_options)},
                "env": {k: {"value": v} for k, v in spec.env.items()},
                "runtimeStatus": str(report.runtime_status),
                "statusDescription": report.status_description,
                "restartCount": report.restart_count,
            }
            if spec.version:
                entry["version"] = spec.version
            optional = {
                "exitCode": report.exit_code,
                "lastStartTimeUtc": _utc(report.last_start_time),
                "lastExitTimeUtc": _utc(report.last_exit_time),
                "lastRestartTimeUtc": _utc(report.last_restart_time),
                "pid": report.pid,
                "generationId": report.generation_id,
            }
            entry.update({k: v for k, v in optional.items() if v is not None})
            reported[name] = entry
        return reported

    async def _create(self, spec: ModuleSpec, manifest: DeploymentManifest) -> None:
        if spec.status is not DesiredStatus.RUNNING or self._backend.idle_reason(spec):
            return
        generation_id = self._generation_id_for(spec.name)
        # The workload API must know the new generation id before the module asks it to sign.
        if self._on_created is not None:
            self._on_created(spec.name, generation_id)
        instance = self._backend.create(
            spec, runtime_environment(self._settings, spec, generation_id), manifest
        )
        proc = ModuleSupervisor(
            spec.name,
            instance,
            spec.restart_policy,
            generation_id,
            self.log_path(spec.name),
            self._backoff,
            self._stop_grace_s,
        )
        self._procs[spec.name] = proc
        await proc.start()

    async def _stop_modules(self, names: list[str], *, forget: bool = True) -> None:
        procs = [self._procs[n] for n in names if n in self._procs]
        if forget:
            for proc in procs:
                del self._procs[proc.name]
        # In parallel, like edgeAgent's plan: n modules cost one grace period, not n.
        results = await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
        for proc, result in zip(procs, results, strict=True):
            if isinstance(result, BaseException):
                proc.kill_now()
                raise LocalRuntimeError(f"stopping {proc.name} failed: {result}") from result

    def _idle_report(self, spec: ModuleSpec) -> ModuleReport:
        if spec.status is DesiredStatus.STOPPED:
            description = "desired status is stopped"
        else:
            description = self._backend.idle_reason(spec) or "not started"
        return ModuleReport(
            name=spec.name,
            runtime_status=RuntimeStatus.STOPPED,
            status_description=description,
            pid=None,
            exit_code=None,
            restart_count=0,
            generation_id=None,
            last_start_time=None,
            last_exit_time=None,
            last_restart_time=None,
        )


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
