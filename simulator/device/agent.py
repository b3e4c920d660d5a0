"""edgeAgent's part on a simulated device: reads the deployment from the ``$edgeAgent`` and
``$edgeHub`` twins, has the runtime and edgeHub apply it, and reports what runs.

Like edgeAgent it reconciles at start-up from whatever the twins hold (so a restarted device
comes back with its last deployment) and again whenever either twin's desired properties
change. A deployment the runtime cannot read is refused whole and the modules that ran keep
running. ``$edgeAgent``'s reported properties follow edgeAgent's (Azure/iotedge
doc/EdgeAgentReportedProperties):

- ``lastDesiredVersion``: the desired ``$version`` last acted on;
- ``lastDesiredStatus``: ``{"code", "description"}``: 200 applied, 400 the deployment could
  not be read, 417 no deployment yet, 500 applying it failed, 406 the agent is not running
  (reported when the device stops);
- ``systemModules`` and ``modules``: per module its desired settings plus ``runtimeStatus``
  (running, backoff, stopped, failed), ``exitCode``, ``statusDescription``, ``restartCount``
  and the last start, exit and restart times.

``$edgeHub`` reports ``lastDesiredVersion`` and ``lastDesiredStatus`` for its routes. Module
states are checked every ``report_interval_s`` and only changes are sent, as merge patches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.deployment.manifest import DeploymentManifest, ManifestError, parse_manifest
from simulator.deployment.routes import Router, parse_routes
from simulator.device.edgehub import EdgeHub
from simulator.device.runtime import LocalRuntime, LocalRuntimeError
from simulator.errors import HubError, RouteSyntaxError, SimulatorError
from simulator.hub.device_link import DeviceLink
from simulator.hub.twin_rules import iso_timestamp
from simulator.jsondoc import JsonObject, merge_diff

log = logging.getLogger(__name__)

EDGE_AGENT = "$edgeAgent"
EDGE_HUB = "$edgeHub"
AGENT_VERSION = "1.5.0-simulated"
_REPORTED_SCHEMA = "1.1"


@dataclass(frozen=True)
class DesiredStatus:
    code: int
    description: str

    def to_json(self) -> JsonObject:
        return {"code": self.code, "description": self.description}


def _nothing() -> None:
    return None


OK = DesiredStatus(200, "")
NO_DEPLOYMENT = DesiredStatus(417, "no deployment has been sent to this device")
NOT_RUNNING = DesiredStatus(406, "the agent is not running")


class EdgeAgent:
    """``__init__`` only assigns; :meth:`start` reconciles once and keeps watching."""

    def __init__(
        self, link: DeviceLink, runtime: LocalRuntime, edgehub: EdgeHub, report_interval_s: float
    ) -> None:
        self._link = link
        self._runtime = runtime
        self._edgehub = edgehub
        self._interval_s = report_interval_s
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unsubscribe: Callable[[], None] = _nothing
        self._acted_on: tuple[int, int] = (0, 0)  # ($edgeAgent, $edgeHub) desired versions
        self._agent_status = NO_DEPLOYMENT
        self._hub_status = NO_DEPLOYMENT
        self._manifest: DeploymentManifest | None = None
        self._reported: dict[str, JsonObject] = {
            EDGE_AGENT: link.reported(EDGE_AGENT),
            EDGE_HUB: link.reported(EDGE_HUB),
        }
        self._started_at = iso_timestamp(dt.datetime.now(dt.UTC))

    @property
    def manifest(self) -> DeploymentManifest | None:
        """The deployment running now (None before the first one)."""
        return self._manifest

    async def start(self) -> None:
        self._unsubscribe = self._link.on_desired(self._desired_changed)
        await self._reconcile()
        self._task = asyncio.create_task(self._watch(), name=f"agent:{self._link.device_id}")

    async def stop(self) -> None:
        """Stop watching, stop every module, and report the agent gone (406).

        A reconcile in progress finishes first: cancelled halfway, the runtime could lose
        track of a module it was stopping.
        """
        self._unsubscribe()
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._runtime.stop()
        self._agent_status = NOT_RUNNING
        self._report()

    async def settled(self) -> None:
        """Return once the twins' current desired versions have been acted on."""
        while self._pending() and not self._stopping:
            self._settled.clear()
            self._wake.set()
            await self._settled.wait()

    def _pending(self) -> bool:
        return self._desired_versions() != self._acted_on

    def _desired_versions(self) -> tuple[int, int]:
        return self._link.desired(EDGE_AGENT)[1], self._link.desired(EDGE_HUB)[1]

    def _desired_changed(self, module_id: str, _patch: JsonObject) -> None:
        if module_id in (EDGE_AGENT, EDGE_HUB):
            self._wake.set()

    async def _watch(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            if self._stopping:
                break
            try:
                if self._pending():
                    await self._reconcile()
                else:
                    self._report()
            except Exception:
                # The device keeps running what it has; the next change or tick tries again.
                log.exception("device %s: reconciling failed", self._link.device_id)
            self._settled.set()
        self._settled.set()  # nobody waits for a stopped agent

    async def _reconcile(self) -> None:
        agent_desired, agent_version = self._link.desired(EDGE_AGENT)
        hub_desired, hub_version = self._link.desired(EDGE_HUB)
        try:
            await self._apply(agent_desired, hub_desired)
        finally:
            # Only now: settled() must not return while the runtime is still applying.
            self._acted_on = (agent_version, hub_version)
            self._report()

    async def _apply(self, agent_desired: JsonObject, hub_desired: JsonObject) -> None:
        if not agent_desired:
            self._agent_status = self._hub_status = NO_DEPLOYMENT
            return
        try:
            manifest = parse_manifest(
                {
                    "modulesContent": {
                        EDGE_AGENT: {"properties.desired": agent_desired},
                        EDGE_HUB: {"properties.desired": hub_desired},
                    }
                }
            )
        except ManifestError as e:
            self._agent_status = DesiredStatus(400, str(e))
            return
        self._apply_routes(manifest)
        self._agent_status = await self._apply_modules(manifest)

    def _apply_routes(self, manifest: DeploymentManifest) -> None:
        try:
            self._edgehub.router = Router(parse_routes(manifest.routes))
        except RouteSyntaxError as e:
            # edgeHub refuses a bad route table and keeps routing with the one it had.
            self._hub_status = DesiredStatus(400, str(e))
        else:
            self._hub_status = OK

    async def _apply_modules(self, manifest: DeploymentManifest) -> DesiredStatus:
        try:
            for name in manifest.modules:
                self._link.ensure_module(name)
            result = await self._runtime.apply(manifest)
        except (LocalRuntimeError, HubError) as e:
            return DesiredStatus(500, str(e))
        except SimulatorError as e:
            return DesiredStatus(400, str(e))
        except Exception as e:
            # A backend failing in a way it did not foresee: the deployment is reported
            # failed (edgeAgent's 500) rather than taken as applied.
            log.exception("device %s: applying the deployment failed", self._link.device_id)
            return DesiredStatus(500, f"applying the deployment failed: {e}")
        self._manifest = manifest
        log.info("device %s: %s", self._link.device_id, result)
        return OK

    # -- reports ---------------------------------------------------------------------------

    def _report(self) -> None:
        agent_version, hub_version = self._acted_on
        self._send(EDGE_AGENT, self._agent_report(agent_version))
        self._send(
            EDGE_HUB,
            {
                "schemaVersion": _REPORTED_SCHEMA,
                "lastDesiredVersion": hub_version,
                "lastDesiredStatus": self._hub_status.to_json(),
            },
        )

    def _agent_report(self, desired_version: int) -> JsonObject:
        manifest = self._manifest
        running = self._agent_status is not NOT_RUNNING
        system: dict[str, Any] = {
            "edgeAgent": {
                "type": "docker",
                "runtimeStatus": "running" if running else "stopped",
                "exitCode": 0,
                "statusDescription": "running" if running else "stopped",
                "lastStartTimeUtc": self._started_at,
                "imagePullPolicy": "on-create",
            },
            "edgeHub": {
                "type": "docker",
                "status": "running",
                "restartPolicy": "always",
                "runtimeStatus": "running" if running else "stopped",
                "exitCode": 0,
                "statusDescription": "running" if running else "stopped",
                "lastStartTimeUtc": self._started_at,
                "restartCount": 0,
            },
        }
        if manifest is not None:
            for name, spec in manifest.system_modules.items():
                if name in system:
                    system[name]["settings"] = {"image": spec.image}
        report: dict[str, Any] = {
            "schemaVersion": _REPORTED_SCHEMA,
            "version": {"version": AGENT_VERSION, "build": "simulator", "commit": ""},
            "lastDesiredVersion": desired_version,
            "lastDesiredStatus": self._agent_status.to_json(),
            "runtime": {
                "type": "docker",
                "platform": {
                    "os": platform.system().lower(),
                    "architecture": platform.machine(),
                    "version": AGENT_VERSION,
                },
            },
            "systemModules": system,
            "modules": self._runtime.reported_modules(),
        }
        return report

    def _send(self, module_id: str, report: JsonObject) -> None:
        patch = merge_diff(self._reported[module_id], report)
        if not patch:
            return
        try:
            self._link.patch_reported(module_id, patch)
        except HubError as e:
            log.warning("device %s: %s report refused: %s", self._link.device_id, module_id, e)
            return
        self._reported[module_id] = report
