"""``modules/<folder>/module.json``: what each module's image is called, per platform.

The format is iotedgedev's (and the VS Code IoT Edge extension's)::

    {"image": {"repository": "${CONTAINER_REGISTRY_SERVER}/classifier",
               "tag": {"version": "0.1.0", "platforms": {"amd64": "./Dockerfile.amd64", ...}},
               "buildOptions": [], "contextPath": "./"}}

The file's text is expanded with the same variables as the template. A platform's image is
``{repository lower-cased}:{version}[-{CONTAINER_TAG}]-{platform}``. Placeholders, as
iotedgedev maps them: ``${MODULES.<folder>.<platform>}`` for every platform listed,
``${MODULES.<folder>}`` for the platform generated for, ``${MODULES.<folder>.debug}`` for its
``<platform>.debug``, and ``${MODULEDIR<path>[.<platform>]}`` for a module folder named by
path relative to the template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_tools.genconfig.environment import expand_json, setting
from cloud_tools.genconfig.errors import GenconfigError

__all__ = ["MODULE_JSON", "ImageMap", "ModuleImage", "load_image_map", "load_module_image"]

MODULE_JSON = "module.json"
# iotedgedev's Constants.moduledir_placeholder_pattern.
_MODULEDIR = re.compile(r"\$\{MODULEDIR<(.+)>(\..+)?\}")


@dataclass(frozen=True)
class ModuleImage:
    """One module folder's module.json, read."""

    folder: Path
    repository: str
    version: str
    platforms: Mapping[str, str]  # platform -> Dockerfile, relative to the folder
    context_path: str
    build_options: tuple[str, ...]

    def tag(self, platform: str, container_tag: str = "") -> str:
        suffix = f"-{container_tag}" if container_tag else ""
        return f"{self.repository.lower()}:{self.version}{suffix}-{platform}"

    def dockerfile(self, platform: str) -> Path:
        return (self.folder / self.platforms[platform]).resolve()

    def context(self) -> Path:
        return (self.folder / self.context_path).resolve()


@dataclass(frozen=True)
class ImageMap:
    """Placeholder -> image, and image -> the module.json it came from."""

    placeholders: Mapping[str, str]
    sources: Mapping[str, ModuleImage]


def load_module_image(folder: Path, env: Mapping[str, str]) -> ModuleImage:
    path = folder / MODULE_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise GenconfigError([f"{path}: no module.json (every module folder needs one)"]) from e
    except OSError as e:
        raise GenconfigError([f"{path}: cannot read: {e}"]) from e
    try:
        document = expand_json(text, env)
    except json.JSONDecodeError as e:
        raise GenconfigError([f"{path}: not JSON: {e}"]) from e
    image = document.get("image", {}) if isinstance(document, dict) else {}
    if not isinstance(image, dict):
        raise GenconfigError([f"{path}: 'image' must be an object"])
    tag: dict[str, Any] = image.get("tag", {}) or {}
    platforms = tag.get("platforms", {}) or {}
    problems = []
    if not isinstance(image.get("repository", ""), str):
        problems.append(f"{path}: image.repository must be a string")
    if not isinstance(platforms, dict) or not all(isinstance(v, str) for v in platforms.values()):
        problems.append(f"{path}: image.tag.platforms must map platform names to Dockerfiles")
    options = image.get("buildOptions", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        problems.append(f"{path}: image.buildOptions must be a list of strings")
    if problems:
        raise GenconfigError(problems)
    return ModuleImage(
        folder=folder,
        repository=image.get("repository", ""),
        version=str(tag.get("version", "0.0.0")),
        platforms=dict(platforms),
        context_path=str(image.get("contextPath", ".")),
        build_options=tuple(options),
    )


def load_image_map(
    template_dir: Path,
    platform: str,
    env: Mapping[str, str],
    module_dir_references: list[str],
) -> ImageMap:
    """Every placeholder the template may use, for ``platform``.

    ``module_dir_references`` are the user modules' image strings, scanned for
    ``${MODULEDIR<...>}`` as iotedgedev does.
    """
    placeholders: dict[str, str] = {}
    sources: dict[str, ModuleImage] = {}
    container_tag = setting(env, "CONTAINER_TAG")
    modules_root = template_dir / setting(env, "MODULES_PATH")
    found: list[tuple[str, ModuleImage]] = []
    if modules_root.is_dir():
        for folder in sorted(modules_root.iterdir()):
            if (folder / MODULE_JSON).is_file():
                found.append((f"MODULES.{folder.name}", load_module_image(folder, env)))
    for image in module_dir_references:
        match = _MODULEDIR.search(image)
        if match is not None:
            relative = match.group(1)
            found.append(
                (f"MODULEDIR<{relative}>", load_module_image(template_dir / relative, env))
            )
    for base, module in found:
        for name in module.platforms:
            tag = module.tag(name, container_tag)
            placeholders[f"${{{base}.{name}}}"] = tag
            placeholders[tag] = tag
            sources[tag] = module
            if name == platform:
                placeholders[f"${{{base}}}"] = tag
            elif name == f"{platform}.debug":
                placeholders[f"${{{base}.debug}}"] = tag
    return ImageMap(placeholders, sources)
