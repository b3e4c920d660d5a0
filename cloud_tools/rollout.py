"""A staged model rollout through an IoT Hub layered deployment.

The deployment sets the module twin's ``model`` section (every model key, null included: the
rule of docs/module-twin.md) on the devices that its target condition selects, layered over
their base deployment. With a canary, the deployment first targets a subset: the first
``canary_percent`` of the matching devices by device id (at least one). The rollout waits for
every canary to report the model active; if any canary reports it failed (or rejected), it
halts there, says which and why, and leaves the deployment on the canaries only, so the other
devices are untouched. Otherwise it widens the same deployment's target condition to every
matching device (IoT Hub lets a deployment's target change, not its content) and waits for
all of them.

With a gate (``cloud_tools.rollout_gate``), the canaries running the new model must also pass
it on the signals they report after the canary window. A failed gate halts the rollout the
same way and rolls the canaries back (the module's ``rollback`` method: the previous model
serves again, and the module does not retry this model for this desired version).

Exit codes: 0 every device active; 1 a device failed (the canary stage halts); 3 a timeout
(the devices still pending are named); 2 for a rollout that cannot start (no device matches,
a priority IoT Hub would not layer, an id IoT Hub refuses).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from azure.iot.hub.models import Configuration, ConfigurationContent, ConfigurationMetrics

from classifier.model_update.desired import SCHEMA_VERSION
from cloud_tools.errors import FAILED, TIMED_OUT, USAGE, CliError
from cloud_tools.hub_service import HubService
from cloud_tools.model_state import ModelState, Progress, model_state
from cloud_tools.rollout_gate import Gate, describe, model_signals, settled

_ID = re.compile(r"[a-z0-9\-:+%_#*?!(),=@;']{1,128}")


@dataclass(frozen=True)
class RolloutPlan:
    name: str
    module: str
    target_condition: str
    priority: int
    model: dict[str, Any]  # the twin's model section, every key
    canary_percent: float | None
    timeout_s: float
    poll_s: float = 2.0
    gate: Gate | None = None

    @property
    def sha256(self) -> str:
        return str(self.model["sha256"])


def check_rollout(name: str, priority: int, canary_percent: float | None) -> None:
    """Refuse what IoT Hub would refuse before anything is uploaded or created."""
    if not _ID.fullmatch(name):
        raise CliError(
            f"--name {name!r}: IoT Hub deployment ids are 1-128 lower-case letters, "
            "digits and -:+%_#*?!(),=@;'",
            USAGE,
        )
    if priority < 0:
        raise CliError("--priority must be a non-negative integer", USAGE)
    if canary_percent is not None and not 0 < canary_percent < 100:
        raise CliError("--canary-percent must be above 0 and below 100", USAGE)


def canary_devices(devices: Sequence[str], percent: float | None) -> list[str]:
    """The first ``percent`` of ``devices`` (sorted), at least one; none without a canary."""
    if percent is None:
        return []
    count = max(1, math.ceil(len(devices) * percent / 100))
    return sorted(devices)[:count] if count < len(devices) else []


def both(condition: str, other: str) -> str:
    return other if condition.strip() == "*" else f"({condition}) AND ({other})"


def _devices_condition(devices: Sequence[str]) -> str:
    return "deviceId IN [" + ", ".join(f"'{d}'" for d in devices) + "]"


class Rollout:
    def __init__(self, hub: HubService, plan: RolloutPlan, out: TextIO) -> None:
        self._hub = hub
        self._plan = plan
        self._out = out

    def run(self) -> int:
        plan = self._plan
        check_rollout(plan.name, plan.priority, plan.canary_percent)
        devices = [str(t.device_id) for t in self._hub.edge_devices(plan.target_condition)]
        if not devices:
            raise CliError(f"no IoT Edge device matches {plan.target_condition!r}", USAGE)
        self._check_priority(devices)
        canaries = canary_devices(devices, plan.canary_percent)
        label = _model_label(plan.model)
        if canaries:
            condition = both(plan.target_condition, _devices_condition(canaries))
            created = self._hub.create_deployment(self._configuration(condition, "canary"))
            self._say(
                f"deployment {plan.name} created (priority {plan.priority}): {label} to "
                f"{len(canaries)} canary device(s) of {len(devices)}: {', '.join(canaries)}"
            )
            code = self._wait(canaries, "canary")
            controls = [d for d in devices if d not in canaries]
            if code == 0 and plan.gate is not None:
                code = self._judge(plan.gate, canaries, controls)
            if code != 0:
                self._halt(code, controls)
                return code
            created.target_condition = plan.target_condition
            created.labels = {**(created.labels or {}), "stage": "all"}
            self._hub.update_deployment(created)
            rest = len(devices) - len(canaries)
            self._say(f"canary active; {plan.name} now targets all {len(devices)} ({rest} more)")
        else:
            self._hub.create_deployment(self._configuration(plan.target_condition, "all"))
            self._say(
                f"deployment {plan.name} created (priority {plan.priority}): {label} to "
                f"{len(devices)} device(s)"
            )
        targeted = [str(t.device_id) for t in self._hub.edge_devices(plan.target_condition)]
        return self._wait(targeted, "rollout")

    # -- the deployment --------------------------------------------------------------------

    def _configuration(self, condition: str, stage: str) -> Configuration:
        plan = self._plan
        module = plan.module
        content = {
            module: {
                "properties.desired.schemaVersion": SCHEMA_VERSION,
                "properties.desired.model": plan.model,
            }
        }
        where = f"FROM devices.modules WHERE moduleId = '{module}'"
        metrics = {
            "modelActive": (
                f"SELECT deviceId {where} AND properties.reported.model.sha256 = '{plan.sha256}'"
            ),
            "modelFailed": (
                f"SELECT deviceId {where} AND properties.reported.modelUpdate.target.sha256 = "
                f"'{plan.sha256}' AND properties.reported.modelUpdate.state IN "
                "['failed', 'rolled_back']"
            ),
        }
        labels = {
            "createdBy": "cloud_tools model rollout",
            "stage": stage,
            "modelSha256": plan.sha256[:12],
            **{k: str(plan.model[k]) for k in ("name", "version") if plan.model.get(k)},
        }
        return Configuration(
            id=plan.name,
            content=ConfigurationContent(modules_content=content),
            target_condition=condition,
            priority=plan.priority,
            labels=labels,
            metrics=ConfigurationMetrics(queries=metrics),
        )

    def _check_priority(self, devices: list[str]) -> None:
        """IoT Hub layers a deployment only over a base with a lower priority."""
        for other in self._hub.deployments():
            content = other.content.modules_content if other.content else None
            agent = (content or {}).get("$edgeAgent") or {}
            if "properties.desired" not in agent or int(other.priority or 0) < self._plan.priority:
                continue
            condition = str(other.target_condition or "").strip()
            if not condition:
                continue
            covered = [str(t.device_id) for t in self._hub.edge_devices(condition)]
            shared = sorted(set(covered) & set(devices))
            if shared:
                raise CliError(
                    f"--priority {self._plan.priority} is not above base deployment {other.id} "
                    f"(priority {other.priority}) on {', '.join(shared[:5])}"
                    f"{' ...' if len(shared) > 5 else ''}: IoT Hub would not layer the model "
                    "over it there",
                    USAGE,
                )

    # -- waiting ---------------------------------------------------------------------------

    def _wait(self, devices: list[str], stage: str) -> int:
        plan = self._plan
        deadline = time.monotonic() + plan.timeout_s
        last = ""
        while True:
            states = self._states(devices)
            line = f"{stage}: {_summary(states)}"
            if line != last:
                self._say(line)
                last = line
            failed = {d: s for d, s in states.items() if s.progress is Progress.FAILED}
            if stage == "canary" and failed:
                for device, state in sorted(failed.items()):
                    self._say(f"  {device}: {state.detail}")
                return FAILED
            if all(s.settled for s in states.values()):
                for device, state in sorted(failed.items()):
                    self._say(f"  {device}: {state.detail}")
                return FAILED if failed else 0
            if time.monotonic() >= deadline:
                pending = sorted(d for d, s in states.items() if not s.settled)
                self._say(f"timed out after {plan.timeout_s:g} s; pending: {', '.join(pending)}")
                return TIMED_OUT
            time.sleep(plan.poll_s)

    def _states(self, devices: list[str]) -> dict[str, ModelState]:
        twins = self._hub.module_twins(self._plan.module, devices)
        states: dict[str, ModelState] = {}
        for device in devices:
            twin = twins.get(device)
            props = twin.properties if twin is not None else None
            desired = dict(props.desired or {}) if props else {}
            reported = dict(props.reported or {}) if props else {}
            states[device] = model_state(desired, reported, self._plan.sha256)
        return states

    # -- the gate ---------------------------------------------------------------------------

    def _judge(self, gate: Gate, canaries: list[str], controls: list[str]) -> int:
        """Waits for the canary window, then judges the canaries' signals for the new model."""
        plan = self._plan
        conditions = ", ".join(str(c) for c in gate.conditions)
        self._say(f"gate: {conditions}; canary window {gate.window_s:g} s")
        started = time.monotonic()
        deadline = started + gate.window_s + plan.timeout_s
        while True:
            reports = self._signals(canaries, plan.sha256)
            if settled(gate, started, reports) or time.monotonic() >= deadline:
                break
            time.sleep(plan.poll_s)
        for device, reported in self._reported(controls).items():
            current = str((reported.get("model") or {}).get("sha256") or "")
            self._say(f"  control {device}: {describe(model_signals(reported, current))}")
        failed = {}
        for device in canaries:
            self._say(f"  canary {device}: {describe(reports[device])}")
            problems = gate.failures(reports[device])
            if problems:
                failed[device] = problems
        if not failed:
            self._say("gate passed")
            return 0
        for device, problems in sorted(failed.items()):
            self._say(f"gate failed on {device}: {'; '.join(problems)}")
        self._roll_back(canaries)
        return FAILED

    def _signals(self, devices: list[str], sha256: str) -> dict[str, dict[str, Any] | None]:
        return {d: model_signals(r, sha256) for d, r in self._reported(devices).items()}

    def _reported(self, devices: list[str]) -> dict[str, dict[str, Any]]:
        twins = self._hub.module_twins(self._plan.module, devices)
        found: dict[str, dict[str, Any]] = {}
        for device in devices:
            twin = twins.get(device)
            found[device] = dict(twin.properties.reported or {}) if twin and twin.properties else {}
        return found

    def _roll_back(self, canaries: list[str]) -> None:
        for device in canaries:
            try:
                status, payload = self._hub.invoke(device, self._plan.module, "rollback", {}, 60)
            except CliError as e:
                self._say(f"  rollback on {device} failed: {e}")
                continue
            outcome = "rolled back" if status == 200 else f"rollback answered {status}: {payload}"
            self._say(f"  {device}: {outcome}")

    def _halt(self, code: int, untouched: list[str]) -> None:
        why = "a canary failed" if code == FAILED else "the canary did not finish in time"
        self._say(
            f"halted: {why}. The other {len(untouched)} device(s) were not touched; deployment "
            f"{self._plan.name} still targets only the canary device(s). Fix the model and roll "
            "out under a new --name; deleting this deployment returns the canaries to the "
            "deployments below it."
        )

    def _say(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()


def _summary(states: dict[str, ModelState]) -> str:
    counts: dict[str, int] = {}
    for state in states.values():
        key = state.detail if state.progress is Progress.UPDATING else str(state.progress)
        key = "downloading" if key.startswith("downloading") else key
        counts[key] = counts.get(key, 0) + 1
    active = counts.pop(str(Progress.ACTIVE), 0)
    rest = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    return f"{active}/{len(states)} active" + (f", {rest}" if rest else "")


def _model_label(model: dict[str, Any]) -> str:
    named = " ".join(str(model[k]) for k in ("name", "version") if model.get(k))
    sha = str(model["sha256"])[:12]
    return f"{named} ({sha})" if named else sha
