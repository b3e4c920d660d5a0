"""Layered deployments: what a device receives when IoT Hub applies them over its base.

A layered deployment is an IoT Hub configuration whose ``content.modulesContent`` holds
paths below ``properties.desired``, plus a ``targetCondition`` and a ``priority``. The rule
for what a layer may set and how layers compose over a base is the hub's
(``simulator.deployment.layering``, the simulated hub applies it per device); ``compose``
does it for one device that every given layer targets, which is how a layer is checked (it
only makes sense on a base) and how the simulator's command line runs a base plus its layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cloud_tools.genconfig.errors import GenconfigError
from simulator.deployment.layering import compose_content, layer_content_problems

__all__ = ["compose", "layer_problems"]


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
    return problems + layer_content_problems(modules_content, where)


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
    ordered = sorted(layers, key=lambda lay: int(lay.get("priority", 0)))
    content = compose_content(
        base["modulesContent"], [layer["content"]["modulesContent"] for layer in ordered]
    )
    return {**base, "modulesContent": content}
