"""Module images built and pushed through the Docker Engine API (the ``docker`` package).

The engine's build API with the classic builder is what ``iotedgedev`` 3.3.9 drives too, so a
module.json's ``buildOptions`` mean the same to both, and no ``docker`` command (whose
version decides between builders) has to be installed. Two choices differ from iotedgedev,
and neither shows in a tag: builds use the host's network unless ``buildOptions`` name one
(the engine that ``scripts/containers.sh`` runs has no bridge), and they ask for the target
platform, so a base image of another architecture is picked, or pulled, for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import docker
from docker.errors import APIError, DockerException

from cloud_tools.errors import FAILED, USAGE, CliError
from cloud_tools.genconfig.build_plan import ImageBuild, RegistryCredentials, engine_platform

__all__ = ["ImageBuilder"]

Log = Callable[[str], None]


class ImageBuilder:
    def __init__(self, api: docker.APIClient) -> None:
        self._api = api

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ImageBuilder:
        """The engine at ``DOCKER_HOST`` (the local socket by default), checked to answer."""
        try:
            # DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, from .env too (as iotedgedev).
            api = docker.from_env(environment=dict(environ)).api
            api.ping()
        except DockerException as e:
            raise CliError(
                f"no container engine answers at {environ.get('DOCKER_HOST', 'the default socket')}: "
                f'{e} (scripts/containers.sh up starts one; eval "$(scripts/containers.sh env)" '
                "points DOCKER_HOST at it)",
                USAGE,
            ) from e
        return cls(api)

    def build(self, image: ImageBuild, log: Log) -> float:
        """Builds and tags ``image``; returns the seconds it took."""
        started = time.monotonic()
        options = image.options
        try:
            stream = self._api.build(
                path=str(image.context),
                dockerfile=os.path.relpath(image.dockerfile, image.context),
                tag=image.tag,
                rm=True,
                # A failed step's container goes too: nothing of a build stays on the engine.
                forcerm=True,
                decode=True,
                network_mode=options.network or "host",
                platform=options.platform or engine_platform(image.platform),
                buildargs=dict(options.build_args) or None,
                labels=dict(options.labels) or None,
                extra_hosts=dict(options.extra_hosts) or None,
                target=options.target,
                nocache=options.no_cache,
                pull=options.pull,
            )
            _follow(stream, log, f"building {image.tag}")
        except (APIError, DockerException) as e:
            raise CliError(f"building {image.tag} failed: {e}", FAILED) from e
        return time.monotonic() - started

    def push(self, tag: str, credentials: RegistryCredentials | None, log: Log) -> float:
        """Pushes ``tag`` with ``credentials`` (anonymously without); returns the seconds it took."""
        started = time.monotonic()
        auth = (
            {"username": credentials.username, "password": credentials.password}
            if credentials is not None
            else None
        )
        try:
            stream = self._api.push(tag, stream=True, decode=True, auth_config=auth)
            _follow(stream, log, f"pushing {tag}")
        except (APIError, DockerException) as e:
            raise CliError(f"pushing {tag} failed: {e}", FAILED) from e
        return time.monotonic() - started


def _follow(stream: Iterable[dict[str, Any]], log: Log, what: str) -> None:
    """Passes the engine's progress on; its error (reported in the stream) becomes ours."""
    for chunk in stream:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise CliError(f"{what} failed: {str(detail).strip()}", FAILED)
        text = chunk.get("stream") or chunk.get("status")
        if isinstance(text, str) and text.strip():
            progress = f" {chunk['progress']}" if "progress" in chunk else ""
            log(f"{text.rstrip()}{progress}")
