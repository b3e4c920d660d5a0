"""The gate a canary must pass before a rollout goes on: conditions on the signals the canary
devices report for the new model (docs/module-twin.md, "Signals").

    --gate "low_confidence_share<=0.10,mean_confidence>=0.85"

After every canary runs the new model, the rollout waits for the canary window and for each
canary to have scored at least ``min_frames`` frames with it, then reads their signals. Every
condition must hold on every canary; a canary without enough frames fails the gate (a model
nobody has seen work is not one to spread). The other devices, still on their models, are
the control: their signals are printed beside the canaries' for the operator to compare.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloud_tools.errors import USAGE, CliError

METRICS = ("mean_confidence", "low_confidence_share", "error_rate", "p50_ms", "p99_ms")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([-+]?[0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


@dataclass(frozen=True)
class Gate:
    conditions: tuple[Condition, ...]
    window_s: float = 120.0
    min_frames: int = 50

    @classmethod
    def parse(cls, text: str, window_s: float, min_frames: int) -> Gate:
        conditions = []
        for part in text.split(","):
            match = _CONDITION.match(part)
            if not match:
                raise CliError(
                    f"--gate {part.strip()!r}: expected METRIC<=N (or >=, <, >), metrics: "
                    f"{', '.join(METRICS)}",
                    USAGE,
                )
            metric, op, number = match.groups()
            if metric not in METRICS:
                raise CliError(
                    f"--gate: unknown metric {metric!r} (known: {', '.join(METRICS)})", USAGE
                )
            conditions.append(Condition(metric, op, float(number)))
        if window_s < 0 or min_frames < 1:
            raise CliError("--canary-window-s must be >= 0 and --gate-min-frames >= 1", USAGE)
        return cls(tuple(conditions), window_s, min_frames)

    def failures(self, signals: Mapping[str, Any] | None) -> list[str]:
        """Why one canary's signals for the new model fail the gate (empty: it passes)."""
        if not signals:
            return ["no signals for the new model"]
        frames = int(signals.get("frames") or 0)
        if frames < self.min_frames:
            return [f"only {frames} frames scored (the gate needs {self.min_frames})"]
        problems = []
        for condition in self.conditions:
            value = signals.get(condition.metric)
            if not isinstance(value, int | float):
                problems.append(f"{condition.metric} not reported")
            elif not condition.holds(float(value)):
                problems.append(f"{condition.metric}={value:g} fails {condition}")
        return problems


def model_signals(reported: Mapping[str, Any], sha256: str) -> dict[str, Any] | None:
    """One model's signals in a module's reported properties (keyed by sha256[:12])."""
    models = (reported.get("signals") or {}).get("models") or {}
    found = models.get(sha256[:12])
    return dict(found) if isinstance(found, Mapping) else None


def describe(signals: Mapping[str, Any] | None) -> str:
    if not signals:
        return "no signals"
    shown = ", ".join(f"{m}={signals.get(m)}" for m in METRICS)
    return (
        f"{signals.get('name')} {signals.get('version')}: {signals.get('frames')} frames, {shown}"
    )


def settled(gate: Gate, started_s: float, reports: Mapping[str, dict[str, Any] | None]) -> bool:
    """The window has passed and every canary has the frames the gate needs."""
    if time.monotonic() - started_s < gate.window_s:
        return False
    return all(s and int(s.get("frames") or 0) >= gate.min_frames for s in reports.values())
