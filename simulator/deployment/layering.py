"""Base and layered deployments, and how IoT Hub composes them for one device.

A *base* (standard) deployment's ``modulesContent`` holds whole sections: ``$edgeAgent`` and
``$edgeHub`` with their ``properties.desired``, and a module's ``properties.desired`` replaces
that module twin's desired properties. A *layered* deployment holds paths below
``properties.desired`` instead: ``$edgeAgent``: ``properties.desired.modules.<name>``;
``$edgeHub``: ``properties.desired.routes.<name>``; a module: ``properties.desired.<key>``
(or its whole ``properties.desired``, which then replaces what lower layers set for it).

IoT Hub gives a device the highest-priority base that targets it, then writes every layer
that targets it and has a higher priority than that base over it, lower priorities first, so
the highest priority wins a path two layers both set. The system runtime (``runtime``,
``systemModules``) always stays the base's. One home for the rule: the simulated hub applies
it per device, genconfig checks a layer composed over its base with it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DESIRED", "SYSTEM_SECTIONS", "compose_content", "is_base", "layer_content_problems"]

DESIRED = "properties.desired"
SYSTEM_SECTIONS = ("$edgeAgent", "$edgeHub")
# What a layer may set in the system sections; runtime and system modules stay the base's.
_SYSTEM_PATHS = {"$edgeAgent": "modules", "$edgeHub": "routes"}


def is_base(modules_content: Mapping[str, Any]) -> bool:
    """A base deployment sets ``$edgeAgent``'s whole desired properties."""
    agent = modules_content.get("$edgeAgent")
    return isinstance(agent, Mapping) and DESIRED in agent


def layer_content_problems(modules_content: Mapping[str, Any], where: str = "layer") -> list[str]:
    """Why IoT Hub would refuse ``modules_content`` as a layer (empty when it would not)."""
    problems = []
    for section, entries in modules_content.items():
        if not isinstance(entries, Mapping):
            problems.append(f"{where}: {section} must be an object")
            continue
        for key in entries:
            parts = key.split(".")
            whole_module = key == DESIRED and section not in SYSTEM_SECTIONS
            if not whole_module and (
                tuple(parts[:2]) != ("properties", "desired") or len(parts) < 3
            ):
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


def compose_content(base: Mapping[str, Any], layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``modulesContent`` a device gets: ``base`` with each layer's paths written over it,
    in the order given (callers order by priority, lowest first)."""
    content: dict[str, Any] = copy.deepcopy(dict(base))
    for layer in layers:
        for section, entries in layer.items():
            target_section = content.setdefault(section, {DESIRED: {}})
            for key, value in entries.items():
                if key == DESIRED:
                    target_section[DESIRED] = copy.deepcopy(value)
                    continue
                desired = target_section.setdefault(DESIRED, {})
                *parents, last = key.split(".")[2:]
                target = desired
                for part in parents:
                    child = target.get(part)
                    if not isinstance(child, dict):
                        child = target[part] = {}
                    target = child
                target[last] = copy.deepcopy(value)
    return content
