"""The simulator's container runtime (``up --runtime docker``): the engine, the local image
registry, the module images built and pushed to it, and a container backend per device.

The order matters: the registry starts first (its address is in every image name), the
images are built and pushed with ``python -m cloud_tools build --push``, as an operator
builds them with iotedgedev, then the deployments are generated with the registry's variables
and the fleet starts, pulling with the deployment's ``registryCredentials``.

Everything this simulator makes on the engine carries its scope (a name derived from its
state folder) in names and labels: stopping removes those containers, and ``remove_volumes``
the named volumes, and nothing else on the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from simulator.child_processes import dies_with_parent, terminate_group
from simulator.device.container_backend import (
    SCOPE_LABEL,
    ContainerBackend,
    ContainerSettings,
    remove_containers,
)
from simulator.device.device import WORKLOAD_SOCKET, DeviceSettings, ModuleCommands
from simulator.errors import SimulatorError
from simulator.local.registry import LocalRegistry, RegistryEndpoint

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
# Where every module container finds the simulator's CA, which also signs the local Blob
# Storage emulator's certificate (a real device downloads from Azure with public roots).
CA_IN_CONTAINER = "/etc/edge-simulator/ca.pem"


class ContainerEngineError(SimulatorError):
    """The Docker engine cannot be reached, or an image cannot be built or pushed."""


def scope_for(state_dir: Path) -> str:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"edgesim-{digest}"


def engine() -> docker.DockerClient:
    """The engine ``DOCKER_HOST`` names (``scripts/containers.sh env`` prints it)."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as e:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise ContainerEngineError(
            f"no Docker engine at {where}: {e}. Start one with scripts/containers.sh up "
            'and eval "$(scripts/containers.sh env)"'
        ) from e
    return client


def container_modules(client: docker.DockerClient, scope: str, ca_file: Path) -> ModuleCommands:
    """A container backend for each device of the fleet."""

    def for_device(device: DeviceSettings) -> ContainerBackend:
        return ContainerBackend(
            client,
            ContainerSettings(
                scope=scope,
                device_id=device.device_id,
                gateway_address=device.address,
                workload_socket=device.state_dir / WORKLOAD_SOCKET,
                echo_output=device.echo_output,
                extra_env={
                    "MODEL_DOWNLOAD_CA_FILE": CA_IN_CONTAINER,
                    # Host networking: a server in a module listens on its device's own
                    # loopback address, never on every interface of the host.
                    "METRICS_HOST": device.address,
                },
                extra_binds=(f"{ca_file}:{CA_IN_CONTAINER}:ro",),
            ),
        )

    return for_device


def remove_volumes(client: docker.DockerClient, scope: str) -> list[str]:
    """Remove the named volumes this simulator's containers used (their data goes too)."""
    removed = []
    for volume in client.volumes.list(filters={"label": f"{SCOPE_LABEL}={scope}"}):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed.append(volume.name)
    return removed


def remove_leftovers(client: docker.DockerClient, scope: str) -> list[str]:
    """Containers a simulator of this state folder left behind (one that was killed)."""
    return remove_containers(client, scope)


async def push_images(
    templates: Sequence[Path], registry: RegistryEndpoint, platform: str = "amd64"
) -> None:
    """Build every module image the templates use and push them, with the operator's own
    command (``python -m cloud_tools build --push``), to the simulator's registry."""
    env = {**os.environ, **registry.variables()}
    for template in templates:
        command = [sys.executable, "-m", "cloud_tools", "build", "--push", "-q"]
        command += ["-f", str(template), "-P", platform]
        print(f"images: building and pushing {template.name} ({platform})", flush=True)
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=template.parent,
            env=env,
            start_new_session=True,
            preexec_fn=dies_with_parent(),
        )
        try:
            code = await process.wait()
        finally:
            # Cancelled (Ctrl-C during the build): the build goes with us.
            await terminate_group(process)
        if code != 0:
            raise ContainerEngineError(f"cloud_tools build --push -f {template} exited {code}")


@dataclass(frozen=True)
class ContainerRuntime:
    """What ``up --runtime docker`` runs beside the fleet."""

    client: docker.DockerClient
    scope: str
    registry: RegistryEndpoint

    def modules(self, ca_file: Path) -> ModuleCommands:
        return container_modules(self.client, self.scope, ca_file)

    def variables(self) -> Mapping[str, str]:
        return self.registry.variables()


@contextlib.asynccontextmanager
async def container_runtime(
    state_dir: Path,
    address: str,
    templates: Sequence[Path],
    *,
    build: bool = True,
    fresh_volumes: bool = False,
) -> AsyncIterator[ContainerRuntime]:
    """The engine, a running registry with the templates' images in it, and the scope; the
    registry is stopped and this scope's containers removed on exit. ``fresh_volumes``: the
    scope's named volumes are removed before and after (a demo starts from nothing and
    leaves nothing); otherwise they stay, as a device keeps its volumes."""
    client = await asyncio.to_thread(engine)
    scope = scope_for(state_dir)
    try:
        left = await asyncio.to_thread(remove_leftovers, client, scope)
        if left:
            log.warning("removed containers an earlier run left: %s", ", ".join(left))
        if fresh_volumes:
            await asyncio.to_thread(remove_volumes, client, scope)
        registry = LocalRegistry(state_dir / "registry", state_dir / "certs", address)
        endpoint = await registry.start()
        try:
            if build:
                await push_images(templates, endpoint)
            yield ContainerRuntime(client, scope, endpoint)
        finally:
            await registry.stop()
            await asyncio.to_thread(remove_containers, client, scope)
            if fresh_volumes:
                await asyncio.to_thread(remove_volumes, client, scope)
    finally:
        client.close()
