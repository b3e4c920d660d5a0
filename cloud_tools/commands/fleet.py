"""``python -m cloud_tools fleet ...``: what a fleet runs, and the deployments that run it.

    fleet status [--target-condition "tags.site='lab'"] [--module classifier] [--json]
    fleet deployments [--json]

``status`` prints one row per IoT Edge device the condition selects (every one by default):
connected, the module's runtime status, its last model update, the model and sha256 serving,
the execution provider, and the module's last activity; then a summary. ``deployments``
lists the hub's automatic deployments with their target, priority and metrics (targeted,
applied, reported successful and failed, and custom metrics such as a rollout's
``modelActive``). Both exit 1 when a device's last model update failed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cloud_tools.errors import FAILED
from cloud_tools.fleet_view import fleet_rows, render_table, summary
from cloud_tools.hub_service import HubService, add_hub_arguments


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("fleet", help="what a fleet of devices runs")
    verbs = parser.add_subparsers(dest="verb", required=True)

    status = verbs.add_parser("status", help="one row per device: module, model, provider")
    status.add_argument(
        "--target-condition", default="*", help="which devices, e.g. \"tags.site='lab'\""
    )
    status.add_argument("--module", default="classifier")
    status.add_argument("--json", action="store_true")
    add_hub_arguments(status)
    status.set_defaults(run=_status)

    deployments = verbs.add_parser("deployments", help="automatic deployments and metrics")
    deployments.add_argument("--json", action="store_true")
    add_hub_arguments(deployments)
    deployments.set_defaults(run=_deployments)


def _status(args: argparse.Namespace) -> int:
    rows = fleet_rows(HubService.from_args(args), args.target_condition, args.module)
    if args.json:
        print(json.dumps({"devices": [r.to_json() for r in rows], "summary": summary(rows)}))
    else:
        print(render_table(rows))
        print(summary(rows))
    return FAILED if any(r.update_state in ("failed", "rolled_back") for r in rows) else 0


def _deployments(args: argparse.Namespace) -> int:
    docs = [_describe(c) for c in HubService.from_args(args).deployments()]
    if args.json:
        print(json.dumps(docs))
        return 0
    for doc in docs:
        system = doc["systemMetrics"]
        counts = ", ".join(f"{k} {v}" for k, v in {**system, **doc["metrics"]}.items())
        print(
            f"{doc['id']}  {doc['kind']}  priority {doc['priority']}  "
            f"target {doc['targetCondition'] or '(none)'}\n  {counts or 'no metrics yet'}"
        )
    return 0


def _describe(configuration: Any) -> dict[str, Any]:
    content = configuration.content.modules_content if configuration.content else None
    agent = (content or {}).get("$edgeAgent") or {}
    system = configuration.system_metrics.results if configuration.system_metrics else None
    metrics = configuration.metrics.results if configuration.metrics else None
    return {
        "id": configuration.id,
        "kind": "base" if "properties.desired" in agent else "layered",
        "priority": configuration.priority,
        "targetCondition": configuration.target_condition,
        "labels": configuration.labels or {},
        "systemMetrics": dict(system or {}),
        "metrics": dict(metrics or {}),
    }
