"""What to capture (the twin's desired ``capture`` section) and where to (the environment).

    "capture": {
      "low_confidence": {"below": 0.5, "per_minute": 30},
      "margin": {"below": 0.15, "per_minute": 30},
      "random": {"probability": 0.01, "per_minute": 6},
      "classes": {"labels": ["star", "heart"], "per_minute": 10},
      "max_bytes_per_day": 104857600
    }

A policy that is absent (or null) is off; a section that is absent, null or empty captures
nothing. The section is validated as a whole with the rest of the desired document: one bad
key rejects the document and the settings in force stay. The storage (a connection string to
the device's local Blob Storage module) is deployment-level and comes from the environment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_module.env import EnvReader, positive

# Frames a policy may capture per minute when its section does not say.
DEFAULT_PER_MINUTE = 60.0
MAX_PER_MINUTE = 6_000.0
DEFAULT_BYTES_PER_DAY = 256 * 1024 * 1024
_MAX_CLASS_LABELS = 1_000
_MAX_LABEL_CHARS = 256


@dataclass(frozen=True)
class Threshold:
    """``low_confidence``: top-1 under ``below``; ``margin``: top-1 minus top-2 under it."""

    below: float
    per_minute: float = DEFAULT_PER_MINUTE


@dataclass(frozen=True)
class Sample:
    probability: float
    per_minute: float = DEFAULT_PER_MINUTE


@dataclass(frozen=True)
class Classes:
    labels: frozenset[str]
    per_minute: float = DEFAULT_PER_MINUTE


@dataclass(frozen=True)
class CaptureSettings:
    low_confidence: Threshold | None = None
    margin: Threshold | None = None
    random: Sample | None = None
    classes: Classes | None = None
    max_bytes_per_day: int = DEFAULT_BYTES_PER_DAY

    @property
    def active(self) -> bool:
        return any(
            p is not None for p in (self.low_confidence, self.margin, self.random, self.classes)
        )

    def to_dict(self) -> dict[str, Any]:
        """As reported: the settings in force, the same shape as the desired section."""
        out: dict[str, Any] = {"max_bytes_per_day": self.max_bytes_per_day}
        for name in ("low_confidence", "margin"):
            threshold: Threshold | None = getattr(self, name)
            out[name] = (
                None
                if threshold is None
                else {"below": threshold.below, "per_minute": threshold.per_minute}
            )
        out["random"] = (
            None
            if self.random is None
            else {"probability": self.random.probability, "per_minute": self.random.per_minute}
        )
        out["classes"] = (
            None
            if self.classes is None
            else {"labels": sorted(self.classes.labels), "per_minute": self.classes.per_minute}
        )
        return out


CAPTURE_OFF = CaptureSettings()
POLICY_NAMES = ("low_confidence", "margin", "classes", "random")


def parse_capture(value: Any, problems: list[str]) -> CaptureSettings:
    """The desired ``capture`` section; every problem is appended (prefixed ``capture.``)."""
    if value is None:
        return CAPTURE_OFF
    if not isinstance(value, Mapping):
        problems.append("capture must be an object")
        return CAPTURE_OFF
    allowed = {*POLICY_NAMES, "max_bytes_per_day"}
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        problems.append(f"capture has unknown keys {unknown} (known: {sorted(allowed)})")
    before = len(problems)
    budget = value.get("max_bytes_per_day")
    if budget is None:
        budget = DEFAULT_BYTES_PER_DAY
    elif not _is_int(budget) or budget <= 0:
        problems.append("capture.max_bytes_per_day must be a positive integer (bytes)")
    settings = CaptureSettings(
        low_confidence=_threshold(value.get("low_confidence"), "low_confidence", problems),
        margin=_threshold(value.get("margin"), "margin", problems),
        random=_sample(value.get("random"), problems),
        classes=_classes(value.get("classes"), problems),
        max_bytes_per_day=budget if _is_int(budget) and budget > 0 else DEFAULT_BYTES_PER_DAY,
    )
    return settings if len(problems) == before else CAPTURE_OFF


def _section(value: Any, name: str, keys: set[str], problems: list[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        problems.append(f"capture.{name} must be an object or null")
        return {}
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        problems.append(f"capture.{name} has unknown keys {unknown} (known: {sorted(keys)})")
    return value


def _per_minute(doc: Mapping[str, Any], name: str, problems: list[str]) -> float:
    if doc.get("per_minute") is None:
        return DEFAULT_PER_MINUTE
    number = _number(doc.get("per_minute"))
    if number is None or not 0 < number <= MAX_PER_MINUTE:
        problems.append(f"capture.{name}.per_minute must be a number in (0, {MAX_PER_MINUTE:g}]")
        return DEFAULT_PER_MINUTE
    return number


def _unit_number(doc: Mapping[str, Any], key: str, where: str, problems: list[str]) -> float:
    number = _number(doc.get(key))
    if number is None or not 0 <= number <= 1:
        problems.append(f"capture.{where}.{key} is required: a number in 0..1")
        return 0.0
    return number


def _threshold(value: Any, name: str, problems: list[str]) -> Threshold | None:
    if value is None:
        return None
    doc = _section(value, name, {"below", "per_minute"}, problems)
    return Threshold(_unit_number(doc, "below", name, problems), _per_minute(doc, name, problems))


def _sample(value: Any, problems: list[str]) -> Sample | None:
    if value is None:
        return None
    doc = _section(value, "random", {"probability", "per_minute"}, problems)
    probability = _unit_number(doc, "probability", "random", problems)
    return Sample(probability, _per_minute(doc, "random", problems))


def _classes(value: Any, problems: list[str]) -> Classes | None:
    if value is None:
        return None
    doc = _section(value, "classes", {"labels", "per_minute"}, problems)
    labels = doc.get("labels")
    valid = (
        isinstance(labels, list)
        and 0 < len(labels) <= _MAX_CLASS_LABELS
        and all(isinstance(x, str) and 0 < len(x) <= _MAX_LABEL_CHARS for x in labels)
    )
    if not valid:
        problems.append(
            f"capture.classes.labels must be a list of 1..{_MAX_CLASS_LABELS} label names"
        )
        return None
    assert isinstance(labels, list)
    return Classes(frozenset(labels), _per_minute(doc, "classes", problems))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A finite JSON number as a float; None for anything else (true/false included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class CaptureStorage:
    """Where captures go: the device's local Blob Storage module (deployment-level)."""

    connection_string: str | None = None  # None: capture off, whatever the twin says
    container: str = "captures"
    queue_capacity: int = 16
    timeout_s: float = 10.0
    ca_file: Path | None = None  # trust for an https endpoint signed by a private CA
    retry_max_s: float = 30.0
    device_id: str = "device"
    module_id: str = "classifier"

    @classmethod
    def from_env(cls, reader: EnvReader) -> CaptureStorage:
        env, get = reader.env, reader.get
        connection = (env.get("CAPTURE_STORAGE_CONNECTION_STRING") or "").strip() or None
        ca = (env.get("CAPTURE_CA_FILE") or "").strip()
        if ca and not Path(ca).is_file():
            reader.problems.append(f"CAPTURE_CA_FILE={ca!r} is not a file")
        container = reader.text("CAPTURE_CONTAINER", "captures")
        if not _valid_container(container):
            reader.problems.append(
                f"CAPTURE_CONTAINER={container!r}: 3-63 lower-case letters, digits and hyphens"
            )
        return cls(
            connection_string=connection,
            container=container,
            queue_capacity=get("CAPTURE_QUEUE_CAPACITY", int, 16, lambda v: 1 <= v <= 10_000),
            timeout_s=get("CAPTURE_TIMEOUT_S", float, 10.0, positive),
            ca_file=Path(ca) if ca else None,
            retry_max_s=get("CAPTURE_RETRY_MAX_S", float, 30.0, positive),
            device_id=reader.text("IOTEDGE_DEVICEID", "device"),
            module_id=reader.text("IOTEDGE_MODULEID", "classifier"),
        )


def _valid_container(name: str) -> bool:
    # Azure's container naming rule, checked here so a typo stops start-up, not every write.
    return (
        3 <= len(name) <= 63
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
        and name[0] != "-"
        and name[-1] != "-"
        and "--" not in name
    )
