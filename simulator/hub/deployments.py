"""IoT Edge automatic deployments, applied as IoT Hub applies them.

For each IoT Edge device the hub evaluates every edge deployment's ``targetCondition`` over
the device twin (``*`` is every device, an empty condition none). Of those that target it,
the highest-priority *base* applies (ties: the most recently created), then every *layered*
deployment with a higher priority than that base, lowest priority first
(``simulator.deployment.layering``); a layer without a base above which it can sit is only
``Targeted``. The composed content is written to the device's twins: ``$edgeAgent`` and
``$edgeHub`` desired properties, and each module's, replaced whole (the twin-merge pitfall of
docs/module-twin.md). The device's runtime reconciles from there.

The hub writes a device's twins only when the list of deployments applied to it changes (a
tag changed, a deployment was created, deleted or re-prioritised); that list is kept in the
database, so a restarted hub does not write anything again, and deployments made with
``applyConfigurationContent`` since stay until the applied list changes. A device no longer
targeted by any deployment keeps what it runs, as on IoT Hub. ``$edgeAgent``'s twin records
each deployment as ``Applied`` or ``Targeted`` in its ``configurations``.

Metrics are IoT Hub's own queries, run when a deployment is read: ``targetedCount``,
``appliedCount``, ``reportedSuccessfulCount`` and ``reportedFailedCount`` (from ``$edgeAgent``'s
``lastDesiredVersion`` and ``lastDesiredStatus``), and each custom metric query's count.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from simulator.deployment.layering import compose_content, is_base
from simulator.errors import HubError, QuerySyntaxError
from simulator.hub.configurations import ConfigurationStore
from simulator.hub.database import DEPLOYMENT_STATE, HubDatabase
from simulator.hub.documents import TwinDocuments
from simulator.hub.queries import count, target_condition, targets
from simulator.hub.registry import Registry
from simulator.hub.twins import TwinStore
from simulator.jsondoc import JsonObject, is_object
from simulator.query import Expr

log = logging.getLogger(__name__)

EDGE_AGENT = "$edgeAgent"
_SUCCESS = "properties.desired.$version = properties.reported.lastDesiredVersion"


@dataclass(frozen=True)
class EdgeDeployment:
    config_id: str
    priority: int
    created: str
    base: bool
    condition: Expr | None  # None: every device
    targets_nothing: bool
    content: JsonObject  # modulesContent

    @property
    def stamp(self) -> str:
        """Identifies this deployment, not just its id: one re-created under the same id is
        another deployment."""
        return f"{self.config_id}@{self.created}"


def edge_deployment(doc: JsonObject) -> EdgeDeployment | None:
    """The IoT Edge deployment a configuration document holds, or None for a device or
    module configuration (stored, but IoT Edge devices do not take them)."""
    content = doc.get("content")
    modules_content = content.get("modulesContent") if is_object(content) else None
    if not is_object(modules_content):
        return None
    condition_text = str(doc.get("targetCondition") or "")
    priority = doc.get("priority")
    return EdgeDeployment(
        config_id=str(doc["id"]),
        priority=priority if isinstance(priority, int) else 0,
        created=str(doc["createdTimeUtc"]),
        base=is_base(modules_content),
        condition=target_condition(condition_text) if condition_text.strip() else None,
        targets_nothing=not condition_text.strip(),
        content=modules_content,
    )


def system_metric_queries(config_id: str, condition: str) -> dict[str, str]:
    """The queries IoT Hub reports in an edge deployment's ``systemMetrics``."""
    stripped = condition.strip()
    where = "" if stripped in ("", "*") else f" and ({stripped})"
    applied = (
        f"select deviceId from devices.modules where moduleId = '{EDGE_AGENT}' "
        f"and configurations.[[{config_id}]].status = 'Applied'"
    )
    return {
        "targetedCount": f"select deviceId from devices where capabilities.iotEdge = true{where}",
        "appliedCount": applied,
        "reportedSuccessfulCount": (
            f"{applied} and {_SUCCESS} and properties.reported.lastDesiredStatus.code = 200"
        ),
        "reportedFailedCount": (
            f"{applied} and {_SUCCESS} and properties.reported.lastDesiredStatus.code != 200"
        ),
    }


class DeploymentEngine:
    """``__init__`` only assigns; use :meth:`load`."""

    def __init__(
        self,
        database: HubDatabase,
        registry: Registry,
        twins: TwinStore,
        configurations: ConfigurationStore,
        documents: TwinDocuments,
        applied: dict[str, list[str]],
    ) -> None:
        self._db = database
        self._registry = registry
        self._twins = twins
        self._configurations = configurations
        self._documents = documents
        self._applied = applied  # device id -> stamps of the deployments applied, in order

    @classmethod
    def load(
        cls,
        database: HubDatabase,
        registry: Registry,
        twins: TwinStore,
        configurations: ConfigurationStore,
        documents: TwinDocuments,
    ) -> DeploymentEngine:
        applied: dict[str, list[str]] = {}
        for (device_id,), doc in database.load(DEPLOYMENT_STATE).items():
            stamps = doc.get("applied")
            applied[device_id] = [str(s) for s in stamps] if isinstance(stamps, list) else []
        return cls(database, registry, twins, configurations, documents, applied)

    def applied_to(self, device_id: str) -> list[str]:
        """Ids of the deployments applied to a device, base first."""
        return [stamp.rsplit("@", 1)[0] for stamp in self._applied.get(device_id, [])]

    def forget_device(self, device_id: str) -> None:
        if self._applied.pop(device_id, None) is not None:
            self._db.delete(DEPLOYMENT_STATE, (device_id,))

    def evaluate(self, device_ids: Iterable[str] | None = None) -> None:
        """Re-evaluate targets for the given devices (every device when None)."""
        wanted = None if device_ids is None else set(device_ids)
        deployments = [
            d for doc in self._configurations.documents() if (d := edge_deployment(doc)) is not None
        ]
        with self._db.transaction():
            for device in self._registry.devices():
                if device.is_edge and (wanted is None or device.device_id in wanted):
                    self._evaluate_device(device.device_id, deployments)

    def _evaluate_device(self, device_id: str, deployments: list[EdgeDeployment]) -> None:
        device = self._registry.require_device(device_id)
        twin = self._documents.device_twin(device)
        targeted = [d for d in deployments if not d.targets_nothing and targets(d.condition, twin)]
        applied = _applicable(targeted)
        stamps = [d.stamp for d in applied]
        if stamps != self._applied.get(device_id, []):
            if applied:
                self._write(device_id, applied)
            self._applied[device_id] = stamps
            self._db.put(DEPLOYMENT_STATE, (device_id,), {"applied": list(stamps)})
        statuses: JsonObject = {}
        for d in targeted:
            entry: JsonObject = {"status": "Applied" if d in applied else "Targeted"}
            statuses[d.config_id] = entry
        self._twins.set_configurations(device_id, EDGE_AGENT, statuses)

    def _write(self, device_id: str, applied: list[EdgeDeployment]) -> None:
        base, *layers = applied
        content = compose_content(base.content, [layer.content for layer in layers])
        try:
            self._twins.apply_modules_content(device_id, content)
        except HubError as e:
            # IoT Hub would have refused such content when the deployment was created; a
            # composition of valid layers can still exceed a twin limit.
            log.warning(
                "deployments %s do not fit %s's twins: %s",
                ", ".join(d.config_id for d in applied),
                device_id,
                e,
            )
        else:
            log.info("applied %s to %s", ", ".join(d.config_id for d in applied), device_id)

    # -- metrics ---------------------------------------------------------------------------

    def describe(self, doc: JsonObject) -> JsonObject:
        """The configuration as the service returns it: with its metrics' current results."""
        described = copy.deepcopy(doc)
        if edge_deployment(doc) is not None:
            queries = system_metric_queries(str(doc["id"]), str(doc.get("targetCondition") or ""))
            results: JsonObject = {
                name: count(text, self._documents) for name, text in queries.items()
            }
            texts: JsonObject = dict(queries)
            described["systemMetrics"] = {"results": results, "queries": texts}
        metrics = described.get("metrics")
        if is_object(metrics) and is_object(metrics.get("queries")):
            custom = metrics["queries"]
            assert is_object(custom)
            metrics["results"] = {name: self._count(str(text)) for name, text in custom.items()}
        return described

    def _count(self, text: str) -> int:
        try:
            return count(text, self._documents)
        except (HubError, QuerySyntaxError):
            return 0


def _applicable(targeted: list[EdgeDeployment]) -> list[EdgeDeployment]:
    bases = [d for d in targeted if d.base]
    if not bases:
        return []  # layers need a base to sit on
    base = max(bases, key=lambda d: (d.priority, d.created, d.config_id))
    layers = [d for d in targeted if not d.base and d.priority > base.priority]
    return [base, *sorted(layers, key=lambda d: (d.priority, d.created, d.config_id))]
