"""The container engine for tests marked ``containers``: the Docker engine ``DOCKER_HOST``
names (``scripts/containers.sh up`` starts one for this repository, and ``.ci/run`` does).

Where there is none, the tests skip with the reason; under CI (``EDGE_REQUIRE_TOOLS=1``) they
fail instead, since CI is where they must run.
"""

from __future__ import annotations

import os

import docker
import pytest

from simulator.local.containers import ContainerEngineError, engine

# The base image the module Dockerfiles start from (or its stand-in, scripts/containers.sh).
PYTHON_BASE = "amd64/python:3.11.13-slim-bookworm"


def unavailable(reason: str) -> None:
    """Skip, or under CI fail: a container test that cannot run there is a failure."""
    if os.environ.get("EDGE_REQUIRE_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def engine_or_skip() -> docker.DockerClient:
    try:
        client = engine()
    except ContainerEngineError as e:
        unavailable(str(e))
        raise  # unreachable: unavailable() always raises
    try:
        client.images.get(PYTHON_BASE)
    except docker.errors.ImageNotFound:
        client.close()
        unavailable(f"the base image {PYTHON_BASE} is missing: run scripts/containers.sh up")
    return client
