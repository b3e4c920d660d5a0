"""What a generated manifest must pass before anyone deploys it.

Offline schema validation (the published schemas in ``../shared/schemas``, through the
simulator's manifest reader, which also reassembles createOptions chunks as edgeAgent does),
then what no schema checks:

- no ``$`` is left in any value outside routes: an unexpanded ``${MODULES.x}`` image makes
  edgeAgent refuse the whole deployment, an unexpanded ``${VAR}`` elsewhere is a silent
  misconfiguration. Each one is explained (no module.json, platform not listed, unset
  variable);
- every route parses (edgeHub's grammar, from the simulator's edgeHub) and names modules in
  this deployment, and outputs and inputs those modules declare in ``endpoints.json`` beside
  their module.json, with the names their ``env`` gives them (a test holds each
  ``endpoints.json`` to its module's code);
- every image that a module.json describes is one of the tags it builds, and the Dockerfile
  it names for that platform exists.

The route grammar and the schema reader live in the simulator, the project's one
implementation of edgeHub and edgeAgent; these checks use them rather than a second copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cloud_tools.genconfig.environment import setting
from cloud_tools.genconfig.generate import Generated, agent_modules
from cloud_tools.genconfig.module_images import MODULE_JSON, ModuleImage, load_module_image
from simulator.deployment.manifest import ManifestError, image_problems, validate_manifest
from simulator.deployment.routes import Route, parse_routes
from simulator.errors import RouteSyntaxError

__all__ = ["ENDPOINTS_JSON", "Endpoints", "content_problems", "manifest_problems"]

ENDPOINTS_JSON = "endpoints.json"
_MODULE_PLACEHOLDER = re.compile(r"\$\{MODULES\.([^.}]+)(?:\.([^}]+))?\}")
_VARIABLE = re.compile(r"\$\{([^}]*)\}|\$(\w+)", re.ASCII)


class Endpoints:
    """A module's declared edgeHub inputs and outputs, each with the env variable renaming it."""

    def __init__(self, inputs: Mapping[str, str | None], outputs: Mapping[str, str | None]):
        self.inputs = inputs
        self.outputs = outputs

    @classmethod
    def load(cls, folder: Path) -> Endpoints | None:
        path = folder / ENDPOINTS_JSON
        if not path.is_file():
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            {name: spec.get("env") for name, spec in document.get("inputs", {}).items()},
            {name: spec.get("env") for name, spec in document.get("outputs", {}).items()},
        )

    @staticmethod
    def _names(declared: Mapping[str, str | None], env: Mapping[str, str]) -> set[str]:
        return {env.get(variable or "", "") or name for name, variable in declared.items()}

    def input_names(self, env: Mapping[str, str]) -> set[str]:
        return self._names(self.inputs, env)

    def output_names(self, env: Mapping[str, str]) -> set[str]:
        return self._names(self.outputs, env)


def manifest_problems(
    document: Mapping[str, Any], generated: list[Generated], *, schemas_dir: Path | None = None
) -> list[str]:
    """Every reason ``document`` (a full manifest) should not be deployed; empty when none.

    ``generated`` are the genconfig results it was made from (one, or a base and its layers):
    they say which module.json each image came from.
    """
    problems: list[str] = []
    try:
        validate_manifest(document, schemas_dir=schemas_dir, check_images=False)
    except ManifestError as e:
        problems.extend(e.problems)
    problems.extend(content_problems(document, generated))
    sources = {tag: m for g in generated for tag, m in g.images.sources.items()}
    problems.extend(_route_problems(document, agent_modules(document)[0], sources))
    return problems


def content_problems(document: Mapping[str, Any], generated: list[Generated]) -> list[str]:
    """What can be checked in any deployment, a layer on its own too: no ``$`` left, and
    each image well formed and one its module.json builds (no schema, no routes)."""
    problems = _dollar_problems(document, generated)
    user, system = agent_modules(document)
    for name, module in {**system, **user}.items():
        image = module.get("settings", {}).get("image")
        if isinstance(image, str) and "$" not in image:
            problems.extend(image_problems(name, image))
    sources = {tag: m for g in generated for tag, m in g.images.sources.items()}
    problems.extend(_image_source_problems(user, sources, generated))
    return problems


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")


def _dollar_problems(document: Mapping[str, Any], generated: list[Generated]) -> list[str]:
    problems = []
    for path, value in _strings(document, ""):
        if ".properties.desired.routes." in f"{path}." or "$" not in value:
            continue
        references = [m.group(0) for m in _VARIABLE.finditer(value)] or ["$"]
        reasons = "; ".join(_why_unexpanded(ref, generated) for ref in references)
        problems.append(f"{path}: {value!r} still holds {', '.join(references)}: {reasons}")
    return problems


def _why_unexpanded(reference: str, generated: list[Generated]) -> str:
    if not generated:
        return "not expanded"
    first = generated[0]
    modules_root = first.template.parent / setting(first.env, "MODULES_PATH")
    module = _MODULE_PLACEHOLDER.fullmatch(reference)
    if module is not None:
        folder, platform = module.group(1), module.group(2) or first.platform
        if platform == "debug":
            platform = f"{first.platform}.debug"
        module_json = modules_root / folder / MODULE_JSON
        if not module_json.parent.is_dir():
            return (
                f"there is no module folder {module_json.parent} (modules are looked up in "
                "modules/ beside the template; --modules names another folder)"
            )
        if not module_json.is_file():
            return f"{module_json} is missing, so iotedgedev leaves the placeholder as is"
        listed = load_module_image(module_json.parent, first.env).platforms
        names = ", ".join(sorted(listed)) or "none"
        return f"{module_json} lists no platform {platform!r} (it lists: {names})"
    name = reference.strip("${}")
    if reference.startswith("$") and name:
        return f"variable {name} has no value (set it in .env or the environment)"
    return "a literal '$' in a value: IoT Edge expands none, so it is almost surely a mistake"


def _image_source_problems(
    user: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, ModuleImage],
    generated: list[Generated],
) -> list[str]:
    problems = []
    container_tag = setting(generated[0].env, "CONTAINER_TAG") if generated else ""
    repositories = {m.repository.lower(): m for m in sources.values()}
    for name, module in user.items():
        image = module.get("settings", {}).get("image")
        if not isinstance(image, str) or "$" in image:
            continue
        source = sources.get(image)
        if source is not None:
            platform = next(p for p in source.platforms if source.tag(p, container_tag) == image)
            if not source.dockerfile(platform).is_file():
                problems.append(
                    f"{name}: {source.folder / MODULE_JSON} names "
                    f"{source.platforms[platform]} for {platform}, which does not exist"
                )
            continue
        repository = image.rsplit(":", 1)[0].lower()
        if repository in repositories:
            owner = repositories[repository]
            tags = ", ".join(owner.tag(p, container_tag) for p in owner.platforms)
            problems.append(
                f"{name}: image {image!r} is not one {owner.folder / MODULE_JSON} builds ({tags})"
            )
    return problems


def _route_problems(
    document: Mapping[str, Any],
    user: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, ModuleImage],
) -> list[str]:
    hub = document.get("modulesContent", {}).get("$edgeHub", {}).get("properties.desired", {})
    routes = hub.get("routes", {}) if isinstance(hub, Mapping) else {}
    if not isinstance(routes, Mapping):
        return []  # the schema check has said so
    endpoints: dict[str, tuple[Endpoints, dict[str, str]]] = {}
    for name, module in user.items():
        source = sources.get(str(module.get("settings", {}).get("image")))
        declared = Endpoints.load(source.folder) if source is not None else None
        if declared is not None:
            env = {k: str(v.get("value", "")) for k, v in (module.get("env") or {}).items()}
            endpoints[name] = (declared, env)
    problems = []
    for route_name, spec in routes.items():
        try:
            [route] = parse_routes({route_name: spec})
        except RouteSyntaxError as e:
            problems.append(f"route {route_name!r}: {e}")
            continue
        problems.extend(_route_source_problems(route, user, endpoints))
        sink = route.sink
        if sink.module_id is None:
            continue
        if sink.module_id not in user:
            problems.append(
                f"route {route_name!r}: sends to module {sink.module_id!r}, {_absent(user)}"
            )
        elif sink.module_id in endpoints:
            declared, env = endpoints[sink.module_id]
            inputs = declared.input_names(env)
            if sink.input_name not in inputs:
                problems.append(
                    f"route {route_name!r}: module {sink.module_id!r} has no input "
                    f"{sink.input_name!r} (its inputs: {', '.join(sorted(inputs)) or 'none'})"
                )
    return problems


def _route_source_problems(
    route: Route,
    user: Mapping[str, Mapping[str, Any]],
    endpoints: Mapping[str, tuple[Endpoints, dict[str, str]]],
) -> list[str]:
    parts = route.source.strip("/").split("/")
    if parts[:2] != ["messages", "modules"] or len(parts) < 3:
        return []  # all messages, all modules' messages, or leaf devices' events
    module = parts[2]
    if module not in user:
        return [f"route {route.name!r}: reads from module {module!r}, {_absent(user)}"]
    if len(parts) == 3 or (len(parts) == 4 and parts[3] == "outputs"):
        return []
    if parts[3] != "outputs" or len(parts) != 5:
        return [
            f"route {route.name!r}: source {route.source!r} is not "
            "/messages/modules/<module>/outputs/<output>"
        ]
    if module in endpoints:
        declared, env = endpoints[module]
        outputs = declared.output_names(env)
        if parts[4] not in outputs:
            return [
                f"route {route.name!r}: module {module!r} has no output {parts[4]!r} "
                f"(its outputs: {', '.join(sorted(outputs)) or 'none'})"
            ]
    return []


def _absent(user: Mapping[str, Any]) -> str:
    return f"which is not in this deployment (modules: {', '.join(sorted(user)) or 'none'})"
