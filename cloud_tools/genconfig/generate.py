"""Deployment template -> deployment manifest text, byte for byte as ``iotedgedev`` 3.3.9 writes it.

The steps and their order are iotedgedev's, because each one shows in the output:

1. the template is parsed as JSON and its strings expanded (``environment.expand_json``;
   iotedgedev expands the text first, which gives the same document unless a value holds a
   character JSON must escape, where iotedgedev fails);
2. every user module whose ``settings.image`` is exactly a placeholder (or an image that
   some module.json builds) gets that image; anything else in an image stays as written;
3. every module's ``createOptions`` (system modules too) becomes minified JSON text, cut into
   512-character chunks: the first replaces ``createOptions`` in place, the rest are appended
   as ``createOptions01``...; more than 8 chunks is refused;
4. the top-level ``$schema-template`` is dropped;
5. the document is written with ``json.dumps(indent=2)``: ASCII only, no final newline.

A layered deployment (IoT Hub's ``{"content": {"modulesContent": ...}}``, where
``$edgeAgent`` holds keys like ``properties.desired.modules.<name>``) goes through the same
steps. Nothing here judges the result: ``checks`` does, after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_tools.genconfig.environment import expand_json
from cloud_tools.genconfig.errors import GenconfigError
from cloud_tools.genconfig.module_images import ImageMap, load_image_map
from cloud_tools.manifest import (
    IOTEDGEDEV_MAX_CHUNKS,
    CreateOptionsError,
    create_options_text,
    split_create_options,
)

__all__ = ["Generated", "agent_modules", "generate_deployment", "manifest_file_name"]

_TEMPLATE_SUFFIX = ".template.json"


@dataclass(frozen=True)
class Generated:
    template: Path
    platform: str
    document: dict[str, Any]
    text: str  # exactly what is written to the file
    file_name: str
    images: ImageMap
    env: Mapping[str, str]
    # What the checks could not cover, for the operator (e.g. a layer with no base to check on).
    notes: tuple[str, ...] = ()

    @property
    def layered(self) -> bool:
        return "content" in self.document


def generate_deployment(template: Path, platform: str, env: Mapping[str, str]) -> Generated:
    try:
        raw = template.read_text(encoding="utf-8")
    except OSError as e:
        raise GenconfigError([f"{template}: cannot read: {e}"]) from e
    document = _parse_expanded(template, raw, env)
    user, system = agent_modules(document, template)
    images = load_image_map(
        template.parent,
        platform,
        env,
        [str(m.get("settings", {}).get("image", "")) for m in user.values()],
    )
    for module in user.values():
        settings = module.get("settings")
        if isinstance(settings, dict) and settings.get("image") in images.placeholders:
            settings["image"] = images.placeholders[settings["image"]]
    for name, module in {**user, **system}.items():
        _chunk_create_options(name, module)
    schema_version = document.get("$schema-template", "")
    document.pop("$schema-template", None)
    return Generated(
        template=template,
        platform=platform,
        document=document,
        text=json.dumps(document, indent=2),
        file_name=manifest_file_name(template, schema_version, platform, env),
        images=images,
        env=env,
    )


def manifest_file_name(
    template: Path, schema_version: object, platform: str, env: Mapping[str, str]
) -> str:
    """``deployment.template.json`` -> ``deployment.<platform>.json``, as iotedgedev names it."""
    if "DEPLOYMENT_CONFIG_FILE" in env:
        return env["DEPLOYMENT_CONFIG_FILE"]
    # iotedgedev compares the template's schema version as a string.
    suffix = f".{platform}" if str(schema_version) > "0.0.1" else ""
    name = template.name
    if name.endswith(_TEMPLATE_SUFFIX):
        prefix = name.removesuffix(_TEMPLATE_SUFFIX)
    elif name.endswith(".json"):
        prefix = name.removesuffix(".json")
    else:
        prefix = "deployment"
    return f"{prefix}{suffix}.json"


def agent_modules(
    document: Mapping[str, Any], where: Path | str = "manifest"
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(user modules, system modules) as live references into ``document``.

    Dotted keys are followed as IoT Hub reads them, so a layered deployment's
    ``properties.desired.modules.camera`` is the user module ``camera``.
    """
    content = _modules_content(document, where)
    agent = _dotted_view(content).get("$edgeAgent", {})
    desired = agent.get("properties", {}).get("desired", {}) if isinstance(agent, dict) else {}
    if "modules" not in desired and "content" not in document:
        raise GenconfigError(
            [
                f"{where}: $edgeAgent properties.desired has no 'modules' (a base deployment needs it)"
            ]
        )
    user = desired.get("modules", {})
    system = desired.get("systemModules", {})
    return _modules_only(user), _modules_only(system)


def _modules_only(section: object) -> dict[str, dict[str, Any]]:
    if not isinstance(section, dict):
        return {}
    return {name: module for name, module in section.items() if isinstance(module, dict)}


def _modules_content(document: Mapping[str, Any], where: Path | str) -> dict[str, Any]:
    for holder, key in ((document, "modulesContent"), (document, "moduleContent")):
        if isinstance(holder.get(key), dict):
            return dict(holder[key])
    content = document.get("content")
    if isinstance(content, dict) and isinstance(content.get("modulesContent"), dict):
        return dict(content["modulesContent"])
    raise GenconfigError([f"{where}: no modulesContent (nor content.modulesContent)"])


def _dotted_view(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": x}`` seen as ``{"a": {"b": x}}``; the leaves stay the very same objects."""
    view: dict[str, Any] = {}
    for key, value in mapping.items():
        if "." not in key:
            view[key] = _dotted_view(value) if isinstance(value, dict) else value
            continue
        *parents, last = key.split(".")
        target = view
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return view


def _parse_expanded(template: Path, raw: str, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        document = expand_json(raw, env)
    except json.JSONDecodeError as e:
        raise GenconfigError(
            [f"{template}: not JSON, as written nor with variables expanded: {e}"]
        ) from e
    if not isinstance(document, dict):
        raise GenconfigError([f"{template}: a deployment template is a JSON object"])
    return document


def _chunk_create_options(name: str, module: dict[str, Any]) -> None:
    settings = module.get("settings")
    if not isinstance(settings, dict) or "createOptions" not in settings:
        return
    text = create_options_text(settings["createOptions"])
    try:
        chunks = split_create_options(text, max_chunks=IOTEDGEDEV_MAX_CHUNKS, module=name)
    except CreateOptionsError as e:
        raise GenconfigError(
            [*e.problems, "iotedgedev refuses it too ('The maximum size of createOptions is 4K')"]
        ) from e
    settings.update(chunks)
