"""The container engine for tests marked ``containers``: the Docker engine ``DOCKER_HOST``
names (``scripts/containers.sh up`` starts one for this repository, and ``.ci/run`` does).

Where there is none, the tests skip with the reason; under CI (``EDGE_REQUIRE_TOOLS=1``) they
fail instead, since CI is where they must run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import docker
import pytest

# The base image the amd64 module Dockerfiles start from (or its stand-in, scripts/containers.sh).
PYTHON_BASE = "amd64/python:3.11.13-slim-bookworm"
# Long enough for a build step or a push of a module image on a loaded 2-core machine.
ENGINE_TIMEOUT_S = 300


def unavailable(reason: str) -> None:
    """Skip, or under CI fail: a container test that cannot run there is a failure."""
    if os.environ.get("EDGE_REQUIRE_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def engine_unreachable() -> str | None:
    """Why the engine cannot be reached, checked before docker-py, which leaks the socket of a
    failed connection (an unraisable ResourceWarning, an error under the tests' settings)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError as e:
                return f"{host}: {e}"
    return None


def require_image(client: docker.DockerClient, name: str) -> None:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        unavailable(f"the base image {name} is missing: run scripts/containers.sh up")


def engine_or_skip() -> docker.DockerClient:
    """A client of the engine, whose amd64 base image is there; skips (or fails) otherwise."""
    why = engine_unreachable()
    if why is not None:
        unavailable(f"no container engine (scripts/containers.sh up starts one): {why}")
    client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
    require_image(client, PYTHON_BASE)
    return client


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    client = engine_or_skip()
    yield client
    client.close()
