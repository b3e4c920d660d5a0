"""Reading generated IoT Edge deployment manifests (the ``modulesContent`` form).

A manifest is validated OFFLINE against the published SchemaStore schemas vendored in
``../shared/schemas`` (relative to the repository root). Their ``$ref`` URLs point at
json.schemastore.org; a ``referencing.Registry`` maps each schema's ``id`` to its local file,
so nothing is ever downloaded. Which schema applies to ``$edgeAgent`` / ``$edgeHub`` depends on
that section's ``schemaVersion``, as in edgeAgent and edgeHub themselves.

After validation the document becomes plain typed objects: ``DeploymentManifest`` holding
``ModuleSpec`` per module, raw routes (parsed by the routing module) and each module's
desired properties. The same reader accepts the body of ``applyConfigurationContent``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4

from cloud_tools import manifest as chunks
from simulator.errors import SimulatorError

__all__ = [
    "CREATE_OPTIONS_CHUNK_CHARS",
    "DEFAULT_STARTUP_ORDER",
    "SCHEMAS_DIR_ENV",
    "SHARED_DIR_ENV",
    "DeploymentManifest",
    "DesiredStatus",
    "ManifestError",
    "ModuleSpec",
    "RestartPolicy",
    "default_schemas_dir",
    "image_problems",
    "join_create_options",
    "load_manifest",
    "parse_manifest",
    "split_create_options",
    "validate_manifest",
]

SCHEMAS_DIR_ENV = "EDGE_MANIFEST_SCHEMAS_DIR"
# The team's shared folder, as tests/conftest.py reads it.
SHARED_DIR_ENV = "SHARED_DIR"
CREATE_OPTIONS_CHUNK_CHARS = chunks.TWIN_STRING_MAX_CHARS
# edgeAgent's default startupOrder (uint32 max): modules without one start last.
DEFAULT_STARTUP_ORDER = 4294967295

_STORE = "https://json.schemastore.org/"
_DEPLOYMENT_2_0 = _STORE + "azure-iot-edge-deployment-2.0.json"
_AGENT_SCHEMAS = {
    "1.0": _DEPLOYMENT_2_0 + "#/properties/modulesContent/properties/$edgeAgent",
    "1.1": _STORE + "azure-iot-edgeagent-deployment-1.1.json#/properties/$edgeAgent",
}
_HUB_SCHEMAS = {
    "1.0": _DEPLOYMENT_2_0 + "#/properties/modulesContent/properties/$edgeHub",
    "1.1": _STORE + "azure-iot-edgehub-deployment-1.1.json#/properties/$edgeHub",
    "1.2": _STORE + "azure-iot-edgehub-deployment-1.2.json#/properties/$edgeHub",
}
_MODULE_SECTION_SCHEMA = (
    _DEPLOYMENT_2_0 + "#/properties/modulesContent/patternProperties/^[a-zA-Z0-9_-]+$"
)
_DESIRED = "properties.desired"
# edgeAgent's own (lenient) image pattern: optional registry/repository path, name, tag.
_IMAGE_REFERENCE = re.compile(r"(?P<repo>([^/]*/)*)(?P<image>[^/:]+)(?P<tag>:[^/:]+)?")


class ManifestError(SimulatorError):
    """The manifest cannot be used; ``problems`` lists every reason found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid deployment manifest:\n  " + "\n  ".join(problems))
        self.problems = problems


class DesiredStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class RestartPolicy(StrEnum):
    NEVER = "never"
    ON_FAILURE = "on-failure"
    ON_UNHEALTHY = "on-unhealthy"
    ALWAYS = "always"


@dataclass(frozen=True)
class ModuleSpec:
    """One module's desired definition, as edgeAgent reads it."""

    name: str
    image: str
    status: DesiredStatus
    restart_policy: RestartPolicy
    version: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    create_options: Mapping[str, Any] = field(default_factory=dict)
    startup_order: int = DEFAULT_STARTUP_ORDER
    image_pull_policy: str | None = None

    def same_definition(self, other: ModuleSpec) -> bool:
        """True when edgeAgent would leave the running module alone.

        startupOrder and imagePullPolicy only matter when a module is created, so a change
        to them alone does not recreate it.
        """
        return (
            self.image == other.image
            and self.version == other.version
            and dict(self.env) == dict(other.env)
            and dict(self.create_options) == dict(other.create_options)
            and self.status == other.status
            and self.restart_policy == other.restart_policy
        )


@dataclass(frozen=True)
class DeploymentManifest:
    """A validated generated manifest. ``raw`` is the document as given."""

    agent_schema_version: str
    hub_schema_version: str
    runtime: Mapping[str, Any]
    system_modules: Mapping[str, ModuleSpec]
    modules: Mapping[str, ModuleSpec]
    routes: Mapping[str, str | Mapping[str, Any]]
    store_and_forward_ttl_s: int | None
    module_desired: Mapping[str, Mapping[str, Any]]
    raw: Mapping[str, Any]

    def modules_in_startup_order(self) -> list[ModuleSpec]:
        # Name breaks ties so start order is reproducible between runs.
        return sorted(self.modules.values(), key=lambda m: (m.startup_order, m.name))


def default_schemas_dir() -> Path:
    """Where the vendored schemas live, first match wins.

    ``$EDGE_MANIFEST_SCHEMAS_DIR``; ``$SHARED_DIR/schemas``; ``../shared/schemas`` beside the
    repository root (two folders above this file's); ``shared/schemas`` inside a checkout that
    carries its own copy. Read when called, never at import.
    """
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    repo_root = Path(__file__).resolve().parents[2]
    candidates = [repo_root.parent / "shared" / "schemas", repo_root / "shared" / "schemas"]
    shared = os.environ.get(SHARED_DIR_ENV)
    if shared:
        candidates.insert(0, Path(shared) / "schemas")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise ManifestError([f"deployment schemas not found (tried {tried}; set {SCHEMAS_DIR_ENV})"])


def load_manifest(path: Path, *, schemas_dir: Path | None = None) -> DeploymentManifest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ManifestError([f"cannot read {path}: {e}"]) from e
    return parse_manifest(text, schemas_dir=schemas_dir)


def parse_manifest(
    document: str | Mapping[str, Any], *, schemas_dir: Path | None = None
) -> DeploymentManifest:
    """Validate ``document`` (JSON text or an already decoded object) and type it."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as e:
            raise ManifestError([f"not JSON: {e}"]) from e
    if not isinstance(document, Mapping):
        raise ManifestError(["a manifest is a JSON object"])
    validate_manifest(document, schemas_dir=schemas_dir)
    return _build(document)


def validate_manifest(
    document: Mapping[str, Any], *, schemas_dir: Path | None = None, check_images: bool = True
) -> None:
    """Raise ``ManifestError`` listing every schema violation, createOptions problem and
    image edgeAgent would refuse (``check_images=False`` leaves images to the caller)."""
    if "$schema-template" in document:
        raise ManifestError(
            ["this is a deployment template; generate the manifest first (iotedgedev genconfig)"]
        )
    content = document.get("modulesContent")
    agent_version = _schema_version(content, "$edgeAgent")
    hub_version = _schema_version(content, "$edgeHub")
    problems: list[str] = []
    if agent_version not in _AGENT_SCHEMAS:
        problems.append(_unsupported("$edgeAgent", agent_version, _AGENT_SCHEMAS))
    if hub_version not in _HUB_SCHEMAS:
        problems.append(_unsupported("$edgeHub", hub_version, _HUB_SCHEMAS))
    if problems:
        raise ManifestError(problems)
    schema = _composite_schema(_AGENT_SCHEMAS[agent_version], _HUB_SCHEMAS[hub_version])
    registry = _registry(str((schemas_dir or default_schemas_dir()).resolve()))
    validator = jsonschema.Draft4Validator(schema, registry=registry)
    try:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    except Unresolvable as e:
        raise ManifestError([f"schema reference cannot be resolved locally: {e}"]) from e
    problems = [f"{_path(e.absolute_path)}: {e.message}" for e in errors]
    if not problems:
        # Only a schema-valid document has the shape the chunk check walks.
        for name, settings in _all_module_settings(document["modulesContent"]):
            if check_images:
                problems.extend(image_problems(name, settings["image"]))
            try:
                join_create_options(settings)
            except ManifestError as e:
                problems.extend(f"{name}: {p}" for p in e.problems)
    if problems:
        raise ManifestError(problems)


def join_create_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object a module's createOptions chunks encode, read as edgeAgent reads them."""
    try:
        return chunks.join_create_options(settings)
    except chunks.CreateOptionsError as e:
        raise ManifestError(e.problems) from e


def split_create_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The inverse of ``join_create_options``: the settings keys a generated manifest holds."""
    try:
        return chunks.split_create_options(chunks.create_options_text(dict(options)))
    except chunks.CreateOptionsError as e:
        raise ManifestError(e.problems) from e


def _schema_version(content: object, section: str) -> str:
    if isinstance(content, Mapping):
        body = content.get(section)
        if isinstance(body, Mapping):
            desired = body.get(_DESIRED)
            if isinstance(desired, Mapping) and isinstance(desired.get("schemaVersion"), str):
                return str(desired["schemaVersion"])
    # Let the newest schema explain what is missing.
    return "1.1"


def _unsupported(section: str, version: str, known: Mapping[str, str]) -> str:
    return f"{section} schemaVersion {version!r} is not supported (known: {', '.join(known)})"


def _composite_schema(agent_ref: str, hub_ref: str) -> dict[str, Any]:
    # The 2.0 deployment schema describes the whole document but pins $edgeHub to the 1.0/1.1
    # shape (it rejects 1.2's mqttBroker), so the envelope is rebuilt here from references to
    # the published per-section schemas chosen by schemaVersion.
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "required": ["modulesContent"],
        "additionalProperties": False,
        "properties": {
            "modulesContent": {
                "type": "object",
                "required": ["$edgeAgent", "$edgeHub"],
                "properties": {"$edgeAgent": {"$ref": agent_ref}, "$edgeHub": {"$ref": hub_ref}},
                "patternProperties": {"^[a-zA-Z0-9_-]+$": {"$ref": _MODULE_SECTION_SCHEMA}},
                "additionalProperties": False,
            }
        },
    }


@lru_cache(maxsize=4)
def _registry(schemas_dir: str) -> Registry[Any]:
    resources: list[tuple[str, Resource[Any]]] = []
    directory = Path(schemas_dir)
    for path in sorted(directory.glob("*.json")):
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ManifestError([f"schema {path} unreadable: {e}"]) from e
        uri = contents.get("$id") or contents.get("id")
        if isinstance(uri, str):
            resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT4)))
    if not resources:
        raise ManifestError([f"no schemas with an id in {directory}"])
    return Registry().with_resources(resources)


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "(document)"


def _all_module_settings(content: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    desired = content["$edgeAgent"][_DESIRED]
    found = [(name, m["settings"]) for name, m in desired["systemModules"].items()]
    found += [(name, m["settings"]) for name, m in desired["modules"].items()]
    return found


def image_problems(module: str, image: str) -> list[str]:
    """Why edgeAgent would refuse ``image`` for ``module`` (empty when it would not)."""
    # edgeAgent refuses the whole deployment (ConfigFormatError) for an image that starts
    # with '$': what a template placeholder such as ${MODULES.x} leaves when nothing expanded it.
    if image.startswith("$") or "${" in image:
        return [
            f"{module}: image {image!r} is an unexpanded template placeholder; edgeAgent "
            "refuses the deployment (generate it with genconfig, which needs the module's "
            "module.json and the variables it names)"
        ]
    if not _IMAGE_REFERENCE.fullmatch(image):
        return [f"{module}: image {image!r} is not an image reference"]
    return []


def _env(raw: Mapping[str, Any] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, entry in (raw or {}).items():
        value = entry["value"]
        # Numbers and booleans are allowed by the schema; JSON spelling keeps them unambiguous.
        env[name] = value if isinstance(value, str) else json.dumps(value)
    return env


def _module(name: str, body: Mapping[str, Any]) -> ModuleSpec:
    settings = body["settings"]
    return ModuleSpec(
        name=name,
        image=settings["image"],
        # edgeAgent's own entry carries neither: it always runs and is always restarted.
        status=DesiredStatus(body.get("status", "running")),
        restart_policy=RestartPolicy(body.get("restartPolicy", "always")),
        version=body.get("version", ""),
        env=_env(body.get("env")),
        create_options=join_create_options(settings),
        startup_order=int(body.get("startupOrder", DEFAULT_STARTUP_ORDER)),
        image_pull_policy=body.get("imagePullPolicy"),
    )


def _build(document: Mapping[str, Any]) -> DeploymentManifest:
    content = document["modulesContent"]
    agent = content["$edgeAgent"][_DESIRED]
    hub = content["$edgeHub"][_DESIRED]
    store = hub.get("storeAndForwardConfiguration")
    return DeploymentManifest(
        agent_schema_version=agent["schemaVersion"],
        hub_schema_version=hub["schemaVersion"],
        runtime=agent["runtime"],
        system_modules={n: _module(n, m) for n, m in agent["systemModules"].items()},
        modules={n: _module(n, m) for n, m in agent["modules"].items()},
        routes=dict(hub["routes"]),
        store_and_forward_ttl_s=store["timeToLiveSecs"] if store else None,
        module_desired={
            n: s[_DESIRED] for n, s in content.items() if n not in ("$edgeAgent", "$edgeHub")
        },
        raw=document,
    )
