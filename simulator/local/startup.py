"""The deployments ``python -m simulator up`` starts a fleet with, from templates or from
generated manifests: the base as an automatic deployment for every device
(``simulator-base``, target ``*``, priority 0) and each layer as a layered deployment for
every device at its own priority (``simulator-layer-<name>``), as IoT Hub would hold them.

From templates, genconfig generates and checks both (local registry variables) and checks
the composition a device gets; from generated manifests, they are used as written and the
hub and the devices' runtimes judge them, refusing, for one, an image left as
``${MODULES...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cloud_tools.genconfig import GenconfigError, device_manifest, prepare
from simulator.deployment.layering import DESIRED
from simulator.errors import SimulatorError
from simulator.fleet import StartupDeployment
from simulator.local.modules import PLATFORM, local_environment

BASE_ID = "simulator-base"
LAYER_PREFIX = "simulator-layer-"
_SUFFIXES = (".template.json", f".{PLATFORM}.json", ".json")


def from_templates(
    template: Path,
    layers: Sequence[Path],
    modules_dir: Path | None = None,
    variables: Mapping[str, str] | None = None,
) -> tuple[StartupDeployment, ...]:
    """``modules_dir`` None: ``modules/`` beside the template, as genconfig looks by default;
    ``variables`` over the local ones (the container runtime's registry, say)."""
    env = {**local_environment(modules_dir), **(variables or {})}
    try:
        device_manifest(template, layers, PLATFORM, env)  # the composition a device gets
        base = prepare(template, PLATFORM, env).document
        generated = [prepare(layer, PLATFORM, env, base=template).document for layer in layers]
    except GenconfigError as e:
        raise SimulatorError(f"cannot deploy {template}:\n{e}") from e
    return _deployments(base, list(zip(layers, generated, strict=True)))


def from_manifests(manifest: Path, layers: Sequence[Path]) -> tuple[StartupDeployment, ...]:
    try:
        base = json.loads(manifest.read_text())
        generated = [json.loads(path.read_text()) for path in layers]
    except (OSError, json.JSONDecodeError) as e:
        raise SimulatorError(f"cannot use {manifest}: {e}") from e
    return _deployments(base, list(zip(layers, generated, strict=True)))


def base_only(manifest: Mapping[str, Any]) -> tuple[StartupDeployment, ...]:
    """One whole manifest (``{"modulesContent": ...}``) as the base for every device."""
    return _deployments(manifest, [])


def _deployments(
    base: Mapping[str, Any], layers: list[tuple[Path, Mapping[str, Any]]]
) -> tuple[StartupDeployment, ...]:
    content = base.get("modulesContent")
    if not isinstance(content, dict):
        raise SimulatorError('the base must be a whole deployment ({"modulesContent": ...})')
    made = [StartupDeployment(BASE_ID, content)]
    for path, layer in layers:
        layer_content = (layer.get("content") or {}).get("modulesContent")
        priority = layer.get("priority", 0)
        if not isinstance(layer_content, dict):
            raise SimulatorError(f"{path}: a layered deployment holds content.modulesContent")
        if not isinstance(priority, int) or isinstance(priority, bool) or priority <= 0:
            raise SimulatorError(
                f"{path}: priority {priority!r}: a layer needs a priority above the base's (0)"
            )
        made.append(StartupDeployment(LAYER_PREFIX + _name(path), layer_content, "*", priority))
    return tuple(made)


def _name(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    name = name.removeprefix("layered.").removeprefix("layered")
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "layer"


def set_module_env(
    deployments: Sequence[StartupDeployment], module: str, name: str, value: str
) -> tuple[StartupDeployment, ...]:
    """The deployments with ``module``'s environment variable set wherever it is defined (a
    base's ``modules`` or a layer's ``properties.desired.modules.<module>``)."""
    changed = []
    for deployment in deployments:
        content = json.loads(json.dumps(deployment.content))
        agent = content.get("$edgeAgent") or {}
        definitions = [agent.get(f"{DESIRED}.modules.{module}")]
        definitions.append(((agent.get(DESIRED) or {}).get("modules") or {}).get(module))
        for definition in definitions:
            if isinstance(definition, dict):
                definition.setdefault("env", {})[name] = {"value": value}
        changed.append(
            StartupDeployment(
                deployment.config_id, content, deployment.target_condition, deployment.priority
            )
        )
    return tuple(changed)
