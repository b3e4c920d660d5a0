"""Which module images a deployment template builds, as ``iotedgedev solution build`` 3.3.9 picks them.

Every user module whose image is a placeholder (or a tag) that some module.json builds, less
those ``BYPASS_MODULES`` names (comma-separated; ``*`` first means all), is built once per tag:
``repository:version[-CONTAINER_TAG]-platform``, from that module.json's Dockerfile for the
platform, in its ``contextPath``, with its ``buildOptions`` (those iotedgedev maps onto the
engine's build API; anything else is refused here rather than ignored).

Pushing goes to the registry whose server is the tag's first path part, with the credentials
iotedgedev reads: ``CONTAINER_REGISTRY_SERVER``/``_USERNAME``/``_PASSWORD``, and the same
with a ``_<NAME>`` suffix for more registries; a registry without them is pushed to anonymously.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cloud_tools.genconfig.environment import setting
from cloud_tools.genconfig.errors import GenconfigError
from cloud_tools.genconfig.generate import Generated, agent_modules
from cloud_tools.genconfig.module_images import ModuleImage

__all__ = [
    "BuildOptions",
    "ImageBuild",
    "RegistryCredentials",
    "engine_platform",
    "images_to_build",
    "registry_credentials",
]

# IoT Edge platform names (module.json's) -> the engine's; ".debug", ".gpu"... are variants.
_ENGINE_PLATFORMS = {"amd64": "linux/amd64", "arm64v8": "linux/arm64", "arm32v7": "linux/arm/v7"}


@dataclass(frozen=True)
class BuildOptions:
    """module.json's ``buildOptions``: the ``docker build`` flags iotedgedev passes on."""

    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None
    platform: str | None = None
    target: str | None = None
    no_cache: bool = False
    pull: bool = False

    @classmethod
    def parse(cls, options: tuple[str, ...], where: Path) -> BuildOptions:
        pairs: dict[str, dict[str, str]] = {"--build-arg": {}, "--label": {}, "--add-host": {}}
        values: dict[str, str] = {}
        flags: set[str] = set()
        problems: list[str] = []
        for option in options:
            tokens = shlex.split(option)
            name, _, inline = (tokens[0] if tokens else "").partition("=")
            value = inline or " ".join(tokens[1:])
            if name in pairs:
                separator = ":" if name == "--add-host" else "="
                key, found, item = value.partition(separator)
                if not found:
                    problems.append(
                        f"{where}: buildOptions '{option}': expected KEY{separator}VALUE"
                    )
                pairs[name][key] = item
            elif name in ("--network", "--platform", "--target") and value:
                values[name] = value
            elif name in ("--no-cache", "--pull", "--rm") and not value:
                flags.add(name)
            else:
                problems.append(
                    f"{where}: buildOptions '{option}' is not supported here (supported: "
                    "--build-arg, --label, --add-host, --network, --platform, --target, "
                    "--no-cache, --pull, --rm)"
                )
        if problems:
            raise GenconfigError(problems)
        return cls(
            build_args=pairs["--build-arg"],
            labels=pairs["--label"],
            extra_hosts=pairs["--add-host"],
            network=values.get("--network"),
            platform=values.get("--platform"),
            target=values.get("--target"),
            no_cache="--no-cache" in flags,
            pull="--pull" in flags,
        )


@dataclass(frozen=True)
class ImageBuild:
    tag: str
    platform: str  # module.json's name: amd64, arm64v8, amd64.debug...
    dockerfile: Path
    context: Path
    options: BuildOptions


@dataclass(frozen=True)
class RegistryCredentials:
    server: str
    username: str
    password: str


def engine_platform(platform: str) -> str | None:
    """``arm64v8.debug`` -> ``linux/arm64``; None for a platform the engine has no name for."""
    return _ENGINE_PLATFORMS.get(platform.split(".", 1)[0])


def images_to_build(generated: Generated) -> list[ImageBuild]:
    """The images ``generated`` deploys that its solution builds, in module order, each once."""
    bypass = [name.strip() for name in setting(generated.env, "BYPASS_MODULES").split(",") if name]
    user, _ = agent_modules(generated.document, generated.template)
    builds: dict[str, ImageBuild] = {}
    for name, module in user.items():
        image = module.get("settings", {}).get("image")
        source = generated.images.sources.get(image) if isinstance(image, str) else None
        if source is None or image in builds:
            continue
        if bypass and (bypass[0] == "*" or name in bypass):
            continue
        builds[image] = _image_build(image, source)
    return list(builds.values())


def _image_build(tag: str, source: ModuleImage) -> ImageBuild:
    platform = max((name for name in source.platforms if tag.endswith(f"-{name}")), key=len)
    dockerfile = source.dockerfile(platform)
    if not dockerfile.is_file():
        raise GenconfigError([f"{source.folder / 'module.json'}: {dockerfile} does not exist"])
    return ImageBuild(
        tag=tag,
        platform=platform,
        dockerfile=dockerfile,
        context=source.context(),
        options=BuildOptions.parse(source.build_options, source.folder / "module.json"),
    )


def registry_credentials(env: Mapping[str, str]) -> dict[str, RegistryCredentials]:
    """Server (lower-cased) -> credentials, from the CONTAINER_REGISTRY_* variables."""
    groups: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        for part in ("SERVER", "USERNAME", "PASSWORD"):
            prefix = f"CONTAINER_REGISTRY_{part}"
            if key == prefix:
                groups.setdefault("", {})[part] = value.strip()
            elif key.startswith(prefix + "_"):
                groups.setdefault(key[len(prefix) + 1 :], {})[part] = value.strip()
    return {
        group["SERVER"].lower(): RegistryCredentials(
            group["SERVER"], group.get("USERNAME", ""), group.get("PASSWORD", "")
        )
        for group in groups.values()
        if group.get("SERVER")
    }
