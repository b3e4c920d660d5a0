"""What each device of a fleet runs, from three twin queries: the IoT Edge devices a target
condition selects, the module's twins and the ``$edgeAgent`` twins (whose reported
``modules`` carry each module's ``runtimeStatus``).

One row per device: is it connected, is the module running, what the last model update did,
which model (version and sha256) serves on which execution provider, and when the module
was last heard from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from cloud_tools.hub_service import HubService

EDGE_AGENT = "$edgeAgent"
# IoT Hub's "never": a twin whose module has not been active reads 0001-01-01.
_NEVER_YEAR = 1


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    connected: bool
    module_status: str  # $edgeAgent's runtimeStatus for the module, or "absent"
    update_state: str  # the module's modelUpdate.state, or "-"
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    provider: str | None
    last_activity: dt.datetime | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["last_activity"] = self.last_activity.isoformat() if self.last_activity else None
        return doc


def fleet_rows(hub: HubService, condition: str, module: str) -> list[DeviceRow]:
    devices = hub.edge_devices(condition)
    modules = hub.module_twins(module)
    agents = hub.module_twins(EDGE_AGENT)
    rows = []
    for device in devices:
        device_id = str(device.device_id)
        twin = modules.get(device_id)
        reported = _reported(twin)
        agent_reported = _reported(agents.get(device_id))
        running = ((agent_reported.get("modules") or {}).get(module) or {}).get("runtimeStatus")
        model = reported.get("model") or {}
        update = reported.get("modelUpdate") or {}
        error = update.get("error") or {}
        rows.append(
            DeviceRow(
                device_id=device_id,
                connected=str(device.connection_state) == "Connected",
                module_status=str(running or "absent"),
                update_state=str(update.get("state") or "-"),
                model_name=model.get("name"),
                model_version=model.get("version"),
                model_sha256=model.get("sha256"),
                provider=model.get("provider"),
                last_activity=_time(twin.last_activity_time if twin is not None else None),
                error=f"{error.get('code')}: {error.get('reason')}" if error else None,
            )
        )
    return rows


def _reported(twin: Any) -> dict[str, Any]:
    props = twin.properties if twin is not None else None
    return dict(props.reported or {}) if props else {}


def _time(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None or value.year == _NEVER_YEAR else value


def render_table(rows: list[DeviceRow], now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    header = ("DEVICE", "CONN", "MODULE", "UPDATE", "MODEL", "SHA256", "PROVIDER", "LAST ACTIVITY")
    lines = [header]
    for row in rows:
        model = " ".join(p for p in (row.model_name, row.model_version) if p) or "-"
        lines.append(
            (
                row.device_id,
                "yes" if row.connected else "no",
                row.module_status,
                row.update_state,
                model,
                (row.model_sha256 or "-")[:12],
                (row.provider or "-").removesuffix("ExecutionProvider"),
                _ago(row.last_activity, now),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    return "\n".join(text)


def summary(rows: list[DeviceRow]) -> str:
    """``5 devices: 4 on seed-cnn-synth10 1.1.0 (169bfc2db7af), 1 failed``."""
    serving: dict[str, int] = {}
    for row in rows:
        if row.model_sha256:
            label = " ".join(p for p in (row.model_name, row.model_version) if p)
            key = f"{label} ({row.model_sha256[:12]})" if label else row.model_sha256[:12]
            serving[key] = serving.get(key, 0) + 1
    parts = [f"{n} on {label}" for label, n in sorted(serving.items())]
    failed = sum(1 for row in rows if row.update_state in ("failed", "rolled_back"))
    if failed:
        parts.append(f"{failed} with a failed last update")
    offline = sum(1 for row in rows if not row.connected)
    if offline:
        parts.append(f"{offline} not connected")
    return f"{len(rows)} device(s)" + (": " + ", ".join(parts) if parts else "")


def _ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
