"""Deployment template -> deployment manifest, as ``iotedgedev genconfig`` does it.

- ``${MODULES.<name>}`` and ``${MODULES.<name>.<platform>}`` become the module's image;
- ``${VAR}`` comes from the given variables (an unknown one is an error, never left in);
- each ``createOptions`` object is written as JSON text in 512-character chunks
  (``createOptions``, ``createOptions01``, ...), because IoT Hub limits twin strings to 512;
- the template's ``$schema-template`` marker is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK_CHARS = 512
MAX_CHUNKS = 100  # edgeAgent reads createOptions01..99
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")


class TemplateError(ValueError):
    pass


def generate_manifest(
    template: Mapping[str, Any], images: Mapping[str, str], variables: Mapping[str, str]
) -> dict[str, Any]:
    missing: set[str] = set()

    def expand(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("MODULES."):
                module = name.split(".")[1]
                if module in images:
                    return images[module]
            elif name in variables:
                return variables[name]
            missing.add(name)
            return match.group(0)

        return _PLACEHOLDER.sub(one, text)

    def walk(node: Any, key: str | None = None) -> Any:
        if key == "settings" and isinstance(node, dict):
            return _settings(walk_dict(node))
        if isinstance(node, dict):
            return walk_dict(node)
        if isinstance(node, list):
            return [walk(v) for v in node]
        return expand(node) if isinstance(node, str) else node

    def walk_dict(node: Mapping[str, Any]) -> dict[str, Any]:
        return {k: walk(v, k) for k, v in node.items() if k != "$schema-template"}

    manifest = walk_dict(template)
    if missing:
        raise TemplateError(f"template variables without a value: {', '.join(sorted(missing))}")
    return manifest


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    options = settings.pop("createOptions", None)
    if options is None:
        return settings
    text = options if isinstance(options, str) else json.dumps(options, separators=(",", ":"))
    chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    if len(chunks) > MAX_CHUNKS:
        raise TemplateError(
            f"createOptions needs {len(chunks)} chunks; edgeAgent reads {MAX_CHUNKS}"
        )
    settings["createOptions"] = chunks[0]
    settings.update({f"createOptions{i:02d}": chunk for i, chunk in enumerate(chunks[1:], 1)})
    return settings


def load_and_generate(
    template_path: Path, images: Mapping[str, str], variables: Mapping[str, str]
) -> dict[str, Any]:
    return generate_manifest(json.loads(template_path.read_text()), images, variables)
