"""Fixtures of the container tests: the engine, a local registry, the probe image in it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from simulator.local.registry import LocalRegistry, RegistryEndpoint
from simulator.mqtt.testing import random_loopback_host

PROBE_DIR = Path(__file__).resolve().parent / "probe"
PROBE_TAG = "edge-sim-tests/probe:1"

pytestmark = pytest.mark.containers


@pytest.fixture(scope="session")
def probe_image(engine: docker.DockerClient) -> str:
    engine.images.build(path=str(PROBE_DIR), tag=PROBE_TAG, network_mode="host", rm=True)
    return PROBE_TAG


@pytest.fixture(scope="session")
def registry_dir() -> Iterator[Path]:
    """Kept for the session, so each test's registry already holds the pushed layers."""
    path = Path(tempfile.mkdtemp(prefix="reg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def registry(registry_dir: Path) -> AsyncIterator[RegistryEndpoint]:
    server = LocalRegistry(
        registry_dir / "registry", registry_dir / "certs", random_loopback_host()
    )
    endpoint = await server.start()
    yield endpoint
    await server.stop()


def push(client: docker.DockerClient, local_tag: str, registry: RegistryEndpoint) -> str:
    """``local_tag`` pushed as ``<registry>/<name>``; returns the pushed image name."""
    name, _, tag = local_tag.rpartition(":")
    remote = f"{registry.server}/{name}"
    client.images.get(local_tag).tag(remote, tag)
    auth = {"username": registry.username, "password": registry.password}
    for line in client.images.push(remote, tag, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise AssertionError(f"push of {remote}:{tag} failed: {line['error']}")
    client.images.remove(f"{remote}:{tag}")  # the device must pull it
    return f"{remote}:{tag}"


def remove_pulled(client: docker.DockerClient, server: str) -> None:
    """Remove the images a test's devices pulled from its registry at ``server``."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{server}/"):
                client.images.remove(tag, force=True)
