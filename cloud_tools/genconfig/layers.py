"""Layered deployments: what a device receives when IoT Hub applies them over its base.

A layered deployment is an IoT Hub configuration whose ``content.modulesContent`` holds
paths below ``properties.desired`` (``$edgeAgent``: ``properties.desired.modules.<name>``;
``$edgeHub``: ``properties.desired.routes.<name>``; a module's twin:
``properties.desired.<key>``), plus a ``targetCondition`` and a ``priority``. IoT Hub writes
each path's value over the base deployment's, lower priorities first, so the highest
priority wins a path two layers both set. ``compose`` does the same for one device that
every given layer targets, which is how a layer is checked (it only makes sense on a base)
and how the simulator runs a base plus its layers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from cloud_tools.genconfig.errors import GenconfigError

__all__ = ["compose", "layer_problems"]

_DESIRED = ("properties", "desired")
# What a layer may set in the system sections; runtime and system modules stay the base's.
_SYSTEM_PATHS = {"$edgeAgent": "modules", "$edgeHub": "routes"}


def layer_problems(layer: Mapping[str, Any], where: str = "layer") -> list[str]:
    """Why IoT Hub would refuse ``layer`` as a layered deployment (empty when it would not)."""
    content = layer.get("content")
    modules_content = content.get("modulesContent") if isinstance(content, Mapping) else None
    if not isinstance(modules_content, Mapping):
        return [f"{where}: a layered deployment holds content.modulesContent"]
    problems = []
    priority = layer.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        problems.append(f"{where}: priority must be a non-negative integer, not {priority!r}")
    condition = layer.get("targetCondition", "")
    if not isinstance(condition, str) or not condition.strip():
        problems.append(f"{where}: a layered deployment needs a targetCondition")
    for section, entries in modules_content.items():
        if not isinstance(entries, Mapping):
            problems.append(f"{where}: {section} must be an object")
            continue
        for key in entries:
            parts = key.split(".")
            if tuple(parts[:2]) != _DESIRED or len(parts) < 3:
                problems.append(
                    f"{where}: {section}.{key}: a layer sets paths below properties.desired, "
                    "e.g. properties.desired.modules.<name>"
                )
            elif section in _SYSTEM_PATHS and (
                parts[2] != _SYSTEM_PATHS[section] or len(parts) < 4
            ):
                problems.append(
                    f"{where}: {section}.{key}: a layer may only set "
                    f"properties.desired.{_SYSTEM_PATHS[section]}.<name> in {section}"
                )
    return problems


def compose(base: Mapping[str, Any], layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The full manifest a device targeted by ``base`` and every one of ``layers`` runs.

    ``base`` is a generated full manifest, each layer a generated layered deployment; the
    layers apply in priority order, ties in the order given.
    """
    problems = [
        p for i, layer in enumerate(layers) for p in layer_problems(layer, f"layer {i + 1}")
    ]
    if "modulesContent" not in base:
        problems.append("the base must be a full deployment (modulesContent), not a layer")
    if problems:
        raise GenconfigError(problems)
    result = copy.deepcopy(dict(base))
    content: dict[str, Any] = result["modulesContent"]
    for layer in sorted(layers, key=lambda lay: int(lay.get("priority", 0))):
        for section, entries in layer["content"]["modulesContent"].items():
            target_section = content.setdefault(section, {"properties.desired": {}})
            desired = target_section.setdefault("properties.desired", {})
            for key, value in entries.items():
                *parents, last = key.split(".")[2:]
                target = desired
                for part in parents:
                    child = target.get(part)
                    if not isinstance(child, dict):
                        child = target[part] = {}
                    target = child
                target[last] = copy.deepcopy(value)
    return result
