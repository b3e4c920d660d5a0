"""The variables a template is expanded with, gathered as ``iotedgedev`` 3.3.9 gathers them.

- ``.env`` in the working directory (or the file ``DOTENV_FILE`` names) is read with
  python-dotenv, the library iotedgedev uses, with its ``${VAR}`` interpolation; a variable
  already in the environment wins over the file (python-dotenv's ``override=False``).
- iotedgedev then sets its own defaults (``MODULES_PATH=modules``, ``CONFIG_OUTPUT_DIR=config``,
  ...) for those unset or blank, and they are visible to the template like any other variable.
- Variables are expanded with ``os.path.expandvars``' rule: ``$NAME`` (letters, digits, ``_``)
  and ``${anything}``; a name without a value is left exactly as written, and an expanded
  value is never expanded again.
- Unlike iotedgedev, which expands the template's text before parsing it (so a password
  holding ``"``, ``\\`` or a newline makes the template invalid JSON, and iotedgedev crashes),
  a template that is JSON as written is parsed first and expanded inside its strings: any
  value fits. For a value without such characters the result is the same. Only a template
  that becomes JSON by expansion (a variable outside quotes) is expanded as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.variables import parse_variables

__all__ = [
    "IOTEDGEDEV_DEFAULTS",
    "dotenv_path",
    "expand_json",
    "expand_variables",
    "load_environment",
    "modules_path",
    "setting",
]

# What iotedgedev's EnvVars.load() writes into the environment when a name is unset or blank.
IOTEDGEDEV_DEFAULTS: Mapping[str, str] = {
    "CONFIG_OUTPUT_DIR": "config",
    "DEPLOYMENT_CONFIG_TEMPLATE_FILE": "deployment.template.json",
    "DEPLOYMENT_CONFIG_DEBUG_TEMPLATE_FILE": "deployment.debug.template.json",
    "DEFAULT_PLATFORM": "amd64",
    "MODULES_PATH": "modules",
    "LOGS_PATH": "logs",
}

# os.path.expandvars' pattern (POSIX): $name or ${anything but a closing brace}.
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)


def dotenv_path(cwd: Path, environ: Mapping[str, str]) -> Path:
    name = environ.get("DOTENV_FILE", "").strip('"').strip("'")
    return cwd / (name or ".env")


def load_environment(cwd: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` plus the dotenv file's values it lacks, plus iotedgedev's defaults."""
    merged = dict(environ)
    path = dotenv_path(cwd, environ)
    if path.is_file():
        resolved: dict[str, str | None] = {}
        for name, raw in dotenv_values(path, interpolate=False, encoding="utf-8").items():
            if raw is None:
                resolved[name] = None
                continue
            # python-dotenv interpolates in file order, the real environment winning.
            scope: dict[str, str | None] = {**resolved, **environ}
            resolved[name] = "".join(atom.resolve(scope) for atom in parse_variables(raw))
        for name, value in resolved.items():
            if value is not None and name not in environ:
                merged[name] = value
    for name, default in IOTEDGEDEV_DEFAULTS.items():
        if not merged.get(name, "").strip():
            merged[name] = default
    return merged


def modules_path(modules_dir: Path | None) -> dict[str, str]:
    """``MODULES_PATH`` naming ``modules_dir`` wherever the template is (absolute: iotedgedev
    reads it relative to the template's folder); nothing when no folder is named."""
    return {} if modules_dir is None else {"MODULES_PATH": str(modules_dir.resolve())}


def setting(env: Mapping[str, str], name: str) -> str:
    """A variable as iotedgedev reads its own settings: stripped, blank when unset."""
    return env.get(name, "").strip()


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("{") and name.endswith("}"):
            name = name[1:-1]
        return env.get(name, match.group(0))

    return _VARIABLE.sub(one, text)


def expand_json(text: str, env: Mapping[str, str]) -> Any:
    """``text`` parsed as JSON, variables expanded inside its strings (names and values).

    Raises ``json.JSONDecodeError`` when ``text`` is not JSON as written, nor once expanded.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        # A variable outside quotes ("priority": $PRIORITY) is JSON only once expanded, as
        # iotedgedev reads every template.
        return json.loads(expand_variables(text, env))
    return _expand_strings(document, env)


def _expand_strings(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expand_variables(value, env)
    if isinstance(value, list):
        return [_expand_strings(item, env) for item in value]
    if isinstance(value, dict):
        return {expand_variables(k, env): _expand_strings(v, env) for k, v in value.items()}
    return value
