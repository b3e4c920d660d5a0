"""A local runtime in edgeAgent's role: runs a deployment's modules as local processes.

A mapping from module name to a local command stands in for each module's image. The
runtime gives every module the environment edgeAgent gives a container (``IOTEDGE_*``,
``RuntimeLogLevel``, the manifest's ``env``), restarts it under its restartPolicy (see
``BackoffPolicy``), and reconciles on a new manifest (``applyConfigurationContent``): added
modules start, removed ones stop, changed ones are recreated, unchanged ones are left alone.

The system modules (edgeAgent, edgeHub) are never started: the simulator itself plays them.

Typical use, with the identity registry owning generation ids as IoT Hub does::

    runtime = LocalRuntime(
        settings,
        {"classifier": ModuleCommand([sys.executable, "-m", "classifier"], cwd=module_dir)},
        state_dir=state_dir,
        generation_id_for=lambda m: registry.add_module(device_id, m).generation_id,
        on_module_removed=lambda m: registry.remove_module(device_id, m),
    )
    await runtime.start(load_manifest(path))
    await runtime.apply(new_manifest)  # on applyConfigurationContent
    await runtime.stop()
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from simulator.deployment.manifest import (
    DeploymentManifest,
    DesiredStatus,
    ModuleSpec,
    split_create_options,
)
from simulator.device.module_process import (
    BackoffPolicy,
    Launch,
    ModuleProcess,
    ModuleReport,
    RuntimeStatus,
)
from simulator.errors import SimulatorError

__all__ = [
    "WORKLOAD_API_VERSION",
    "BackoffPolicy",
    "EdgeRuntimeSettings",
    "LocalRuntime",
    "LocalRuntimeError",
    "ModuleCommand",
    "ModuleReport",
    "ReconcileResult",
    "RuntimeStatus",
    "module_environment",
    "new_generation_id",
]

_log = logging.getLogger(__name__)

# aziot-edged's workload API version; the device SDK sends it back on every workload call.
WORKLOAD_API_VERSION = "2022-08-03"
# docker stop's default grace period before SIGKILL.
DEFAULT_STOP_GRACE_S = 10.0
# Variables that decide a module's identity. A parent's values must never leak into a module.
_IDENTITY_PREFIXES = ("IOTEDGE_",)
_IDENTITY_NAMES = frozenset(
    {"EdgeHubConnectionString", "EdgeModuleCACertificateFile", "RuntimeLogLevel"}
)

GenerationListener = Callable[[str, str], None]
GenerationSource = Callable[[str], str]
RemovalListener = Callable[[str], None]


class LocalRuntimeError(SimulatorError):
    """The runtime cannot do what was asked. A manifest it cannot run is refused before any
    module is touched."""


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
class ModuleCommand:
    """The local stand-in for a module's image.

    ``env`` is applied last, over even the ``IOTEDGE_*`` values, so a test can aim one module
    elsewhere. ``inherit_env`` passes this process's environment (minus identity variables)
    underneath, since a local process needs PATH and friends that an image would carry.
    """

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    inherit_env: bool = True


@dataclass(frozen=True)
class ReconcileResult:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    recreated: tuple[str, ...]
    unchanged: tuple[str, ...]


def new_generation_id() -> str:
    # IoT Hub generation ids are 18-digit decimal strings.
    return str(10**17 + secrets.randbelow(9 * 10**17))


def module_environment(
    settings: EdgeRuntimeSettings,
    spec: ModuleSpec,
    generation_id: str,
    command: ModuleCommand,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a module process gets, in edgeAgent's layering.

    Later layers win: inherited base, createOptions ``Env``, the manifest's ``env``, the
    runtime's own variables (edgeAgent appends them last, so a manifest cannot spoof an
    identity), then the caller's extras.
    """
    env: dict[str, str] = {}
    if command.inherit_env:
        source = os.environ if base is None else base
        env.update(
            (k, v)
            for k, v in source.items()
            if k not in _IDENTITY_NAMES and not k.startswith(_IDENTITY_PREFIXES)
        )
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
    env.update(command.env)
    return env


class LocalRuntime:
    """Runs a deployment's modules as local process groups. Not thread-safe: one event loop.

    Each (re)created module gets a generation id from ``generation_id_for`` (for instance the
    identity registry's, which like IoT Hub keeps one per module identity), or a fresh one
    when none is given; ``on_module_created`` hears it before the process starts, and
    ``on_module_removed`` hears of modules a new manifest drops. A restart under the restart
    policy is not a re-creation and keeps the id.
    """

    def __init__(
        self,
        settings: EdgeRuntimeSettings,
        commands: Mapping[str, ModuleCommand],
        *,
        state_dir: Path,
        backoff: BackoffPolicy | None = None,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        echo_output: bool = False,
        skip_unmapped: bool = False,
        on_module_created: GenerationListener | None = None,
        on_module_removed: RemovalListener | None = None,
        generation_id_for: GenerationSource | None = None,
    ) -> None:
        self._settings = settings
        self._commands = dict(commands)
        self._state_dir = state_dir
        self._backoff = backoff or BackoffPolicy()
        self._stop_grace_s = stop_grace_s
        self._echo = echo_output
        self._skip_unmapped = skip_unmapped
        self._on_created = on_module_created
        self._on_removed = on_module_removed
        self._generation_id_for = generation_id_for or (lambda _module: new_generation_id())
        self._manifest: DeploymentManifest | None = None
        self._specs: dict[str, ModuleSpec] = {}
        self._procs: dict[str, ModuleProcess] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def manifest(self) -> DeploymentManifest | None:
        return self._manifest

    @property
    def logs_dir(self) -> Path:
        return self._state_dir / "logs"

    def log_path(self, module: str) -> Path:
        return self.logs_dir / f"{module}.log"

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
            self._check_commands(manifest)
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
                    await self._create(spec)
            result = ReconcileResult(
                tuple(added), tuple(removed), tuple(recreated), tuple(unchanged)
            )
            _log.info("reconciled: %s", result)
            return result

    async def stop(self) -> None:
        """Stop every module (SIGTERM, SIGKILL after the grace period). Idempotent."""
        async with self._lock:
            self._closed = True
            # The stopped processes stay listed so their final reports can still be read.
            await self._stop_modules(list(self._procs), forget=False)

    def kill_now(self) -> None:
        """Synchronous SIGKILL of every module group: a finalizer's safety net."""
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

    def _check_commands(self, manifest: DeploymentManifest) -> None:
        if self._skip_unmapped:
            return
        missing = sorted(
            name
            for name, spec in manifest.modules.items()
            if spec.status is DesiredStatus.RUNNING and name not in self._commands
        )
        if missing:
            raise LocalRuntimeError(f"no local command for module(s): {', '.join(missing)}")

    async def _create(self, spec: ModuleSpec) -> None:
        command = self._commands.get(spec.name)
        if spec.status is not DesiredStatus.RUNNING or command is None:
            return
        generation_id = self._generation_id_for(spec.name)
        # The workload API must know the new generation id before the module asks it to sign.
        if self._on_created is not None:
            self._on_created(spec.name, generation_id)
        launch = Launch(
            argv=list(command.argv),
            env=module_environment(self._settings, spec, generation_id, command),
            cwd=command.cwd,
        )
        proc = ModuleProcess(
            spec.name,
            launch,
            spec.restart_policy,
            generation_id,
            self.log_path(spec.name),
            self._backoff,
            echo_output=self._echo,
        )
        self._procs[spec.name] = proc
        await proc.start()

    async def _stop_modules(self, names: list[str], *, forget: bool = True) -> None:
        procs = [self._procs[n] for n in names if n in self._procs]
        if forget:
            for proc in procs:
                del self._procs[proc.name]
        # In parallel, like edgeAgent's plan: n modules cost one grace period, not n.
        results = await asyncio.gather(
            *(p.stop(self._stop_grace_s) for p in procs), return_exceptions=True
        )
        for proc, result in zip(procs, results, strict=True):
            if isinstance(result, BaseException):
                proc.kill_now()
                raise LocalRuntimeError(f"stopping {proc.name} failed: {result}") from result

    def _idle_report(self, spec: ModuleSpec) -> ModuleReport:
        if spec.status is DesiredStatus.STOPPED:
            description = "desired status is stopped"
        else:
            description = "no local command for this module"
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
