"""Modules as containers, created through the Docker Engine API the way edgeAgent creates them.

For each module the backend pulls the image with the deployment's ``registryCredentials``
(``imagePullPolicy`` ``on-create``, edgeAgent's default; ``never`` uses the local image),
then creates the container from the module's ``createOptions`` as given, with what edgeAgent
and aziot-edged add (Azure/iotedge: edge-agent's CombinedDockerConfigProvider, the edgelet's
Docker runtime):

- ``Env``: the createOptions' own, the deployment's ``env`` and the ``IOTEDGE_*`` variables,
  merged (the runtime computes them; see ``runtime_environment``);
- the workload socket bind-mounted at ``/var/run/iotedge/workload.sock``, with
  ``IOTEDGE_WORKLOADURI`` pointing at it;
- edgeAgent's labels (owner, version, restartPolicy, desiredStatus, normalizedCreateOptions,
  original-image) plus the simulator's own (scope, device, module), by which it finds, and
  only ever removes, containers it made;
- Docker's own restart policy left off: the supervisor restarts under the deployment's
  restartPolicy with edgeAgent's backoff, as edgeAgent does.

Where the simulator differs from a device (see docs/fleet.md): containers use host networking
instead of edgeAgent's ``azure-iot-edge`` bridge, so ``PortBindings`` and ``ExposedPorts``
are dropped and edgeHub's host name resolves (``ExtraHosts``) to the device's loopback
address; container and named-volume names carry the simulator's scope and the device id,
since several simulated devices share one engine where each real device has its own.

The Docker SDK is synchronous: calls run in threads, and the long waits (a container's exit,
its log stream) each get a daemon thread of their own so they never hold the loop's executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import docker
import docker.errors
from docker.models.containers import Container

from simulator.deployment.manifest import DeploymentManifest, ModuleSpec
from simulator.device.process_backend import echo_lines
from simulator.device.supervisor import LaunchError, LogLine

__all__ = [
    "OWNER_LABEL",
    "SCOPE_LABEL",
    "ContainerBackend",
    "ContainerInstance",
    "ContainerSettings",
    "registry_credential",
]

_log = logging.getLogger(__name__)

OWNER_LABEL = "net.azure-devices.edge.owner"
OWNER = "Microsoft.Azure.Devices.Edge.Agent"
SCOPE_LABEL = "net.azure-devices.edge.simulator.scope"
DEVICE_LABEL = "net.azure-devices.edge.simulator.device"
MODULE_LABEL = "net.azure-devices.edge.simulator.module"
WORKLOAD_SOCKET_IN_CONTAINER = "/var/run/iotedge/workload.sock"
# docker run's exit status when the engine itself failed (pull, create): edgeAgent has no
# exit code for a module it could not create, and the restart rules need one.
_ENGINE_FAILED_EXIT_CODE = 125
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]+")

T = TypeVar("T")


@dataclass(frozen=True)
class ContainerSettings:
    """What a device's containers share.

    ``scope`` names this simulator (its state folder), so two simulators on one engine never
    touch each other's containers or volumes. ``extra_env`` and ``extra_binds`` are the
    device's own trust settings for every module (the simulator's CA, which also signs the
    local Blob Storage emulator's certificate).
    """

    scope: str
    device_id: str
    gateway_address: str
    workload_socket: Path
    gateway_host_name: str = "edgeHub"
    platform: str = "linux/amd64"
    echo_output: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    extra_binds: tuple[str, ...] = ()

    def name(self, part: str) -> str:
        return _NAME_CHARS.sub("-", f"{self.scope}-{self.device_id}-{part}")


def registry_credential(runtime: Mapping[str, Any], image: str) -> dict[str, str] | None:
    """The deployment's ``registryCredentials`` entry whose address is the image's registry."""
    registry = image.split("/", 1)[0] if "/" in image else ""
    settings = runtime.get("settings") or {}
    for entry in (settings.get("registryCredentials") or {}).values():
        if isinstance(entry, Mapping) and entry.get("address") == registry:
            return {"username": str(entry.get("username")), "password": str(entry.get("password"))}
    return None


class ContainerBackend:
    """Creates a device's modules as containers on one Docker engine."""

    kind = "docker"

    def __init__(self, client: docker.DockerClient, settings: ContainerSettings) -> None:
        self._client = client
        self._settings = settings

    def refusal(self, manifest: DeploymentManifest) -> str | None:
        return None

    def idle_reason(self, spec: ModuleSpec) -> str | None:
        return None

    def create(
        self, spec: ModuleSpec, runtime_env: Mapping[str, str], manifest: DeploymentManifest
    ) -> ContainerInstance:
        env = {**runtime_env, **self._settings.extra_env}
        env["IOTEDGE_WORKLOADURI"] = f"unix://{WORKLOAD_SOCKET_IN_CONTAINER}"
        return ContainerInstance(
            self._client,
            spec,
            container_config(spec, env, self._settings),
            registry_credential(manifest.runtime, spec.image),
            self._settings,
        )

    def remove_all(self) -> list[str]:
        """Remove every container of this scope and device (a dead simulator's leftovers)."""
        return remove_containers(self._client, self._settings.scope, self._settings.device_id)


def remove_containers(
    client: docker.DockerClient, scope: str, device_id: str | None = None
) -> list[str]:
    """Force-remove the containers this simulator labelled; never any other."""
    labels = [f"{OWNER_LABEL}={OWNER}", f"{SCOPE_LABEL}={scope}"]
    if device_id is not None:
        labels.append(f"{DEVICE_LABEL}={device_id}")
    removed = []
    for container in client.containers.list(all=True, filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(container.name)
    return removed


def container_config(
    spec: ModuleSpec, env: Mapping[str, str], settings: ContainerSettings
) -> dict[str, Any]:
    """The Docker Engine API body for ``POST /containers/create``."""
    options = copy.deepcopy(dict(spec.create_options))
    config: dict[str, Any] = {**options, "Image": spec.image}
    config["Env"] = [f"{name}={value}" for name, value in env.items()]
    config.pop("ExposedPorts", None)
    labels = dict(options.get("Labels") or {})
    labels.update(
        {
            OWNER_LABEL: OWNER,
            "net.azure-devices.edge.version": spec.version,
            "net.azure-devices.edge.restartPolicy": str(spec.restart_policy),
            "net.azure-devices.edge.desiredStatus": str(spec.status),
            "net.azure-devices.edge.normalizedCreateOptions": json.dumps(
                spec.create_options, sort_keys=True, separators=(",", ":")
            ),
            "net.azure-devices.edge.original-image": spec.image,
            SCOPE_LABEL: settings.scope,
            DEVICE_LABEL: settings.device_id,
            MODULE_LABEL: spec.name,
        }
    )
    config["Labels"] = labels
    host: dict[str, Any] = dict(options.get("HostConfig") or {})
    host["NetworkMode"] = "host"
    host.pop("PortBindings", None)
    host["RestartPolicy"] = {"Name": "no"}
    host["Binds"] = [
        *(_scoped_bind(bind, settings) for bind in host.get("Binds") or []),
        f"{settings.workload_socket}:{WORKLOAD_SOCKET_IN_CONTAINER}",
        *settings.extra_binds,
    ]
    host["Mounts"] = [_scoped_mount(mount, settings) for mount in host.get("Mounts") or []]
    host["ExtraHosts"] = [
        *(host.get("ExtraHosts") or []),
        f"{settings.gateway_host_name}:{settings.gateway_address}",
    ]
    config["HostConfig"] = host
    config.pop("NetworkingConfig", None)
    return config


def _named_volumes(config: Mapping[str, Any]) -> list[str]:
    host = config.get("HostConfig") or {}
    names = [str(m["Source"]) for m in host.get("Mounts") or [] if m.get("Type") == "volume"]
    for bind in host.get("Binds") or []:
        source, sep, _ = str(bind).partition(":")
        if sep and not source.startswith("/"):
            names.append(source)
    return names


def _scoped_bind(bind: str, settings: ContainerSettings) -> str:
    source, sep, rest = str(bind).partition(":")
    if sep and not source.startswith("/"):
        return f"{settings.name(source)}:{rest}"  # a named volume
    return str(bind)


def _scoped_mount(mount: Mapping[str, Any], settings: ContainerSettings) -> dict[str, Any]:
    scoped = dict(mount)
    if scoped.get("Type") == "volume" and scoped.get("Source"):
        scoped["Source"] = settings.name(str(scoped["Source"]))
    return scoped


class ContainerInstance:
    """One module's container; created on the first launch, started again on a restart."""

    def __init__(
        self,
        client: docker.DockerClient,
        spec: ModuleSpec,
        config: Mapping[str, Any],
        credential: Mapping[str, str] | None,
        settings: ContainerSettings,
    ) -> None:
        self._client = client
        self._spec = spec
        self.config = config
        self._credential = credential
        self._settings = settings
        self.name = settings.name(spec.name)
        self._container: Container | None = None
        self._log_thread: threading.Thread | None = None
        self.started_at: datetime | None = None

    @property
    def identity(self) -> str:
        short = self._container.short_id if self._container is not None else "-"
        return f"container={self.name} ({short}) image={self._spec.image}"

    @property
    def pid(self) -> int | None:
        container = self._container
        if container is None:
            return None
        pid = container.attrs.get("State", {}).get("Pid")
        return int(pid) if pid else None

    @property
    def container(self) -> Container | None:
        return self._container

    async def launch(self, log_file: BinaryIO) -> None:
        if self._container is None:
            await self._pull()
            self._container = await _call(self._create)
        container: Container = self._container
        try:
            await _call(container.start)
            await _call(container.reload)
        except docker.errors.APIError as e:
            raise LaunchError(
                f"cannot start container {self.name}: {_explain(e)}", _ENGINE_FAILED_EXIT_CODE
            ) from e
        self.started_at = _docker_time(container.attrs["State"].get("StartedAt"))
        self._follow_logs(container, log_file)

    async def wait_exit(self, stop: asyncio.Event, grace_s: float) -> int:
        container = self._container
        assert container is not None
        exited = _in_thread(lambda: container.wait(timeout=None))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not exited.done():
            with contextlib.suppress(docker.errors.APIError):
                # docker stop: SIGTERM (or the image's StopSignal), SIGKILL after grace_s.
                await _call(lambda: container.stop(timeout=max(1, round(grace_s))))
        result = await exited
        await self._join_logs()
        with contextlib.suppress(docker.errors.APIError):
            await _call(container.reload)
        return int(result.get("StatusCode", _ENGINE_FAILED_EXIT_CODE))

    async def discard(self) -> None:
        """Remove the container (its named volumes stay, as Docker keeps them)."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                # v: its anonymous volumes go with it (named volumes stay, as with docker rm -v).
                await _call(lambda: container.remove(force=True, v=True))
        await self._join_logs()

    async def read_logs(
        self, since: datetime | None, until: datetime | None, tail: int | None
    ) -> list[LogLine]:
        """What the container wrote, across its restarts, from the engine's own log (the
        json-file driver's, or whatever ``LogConfig`` chose), each line with its timestamp."""
        container = self._container
        if container is None:
            return []
        # The engine's time bounds are whole seconds: the exact ones are applied to each line
        # below, and so is the tail when there are bounds, so it counts only lines within them.
        exact = since is None and until is None and tail is not None
        options: dict[str, Any] = {"timestamps": True, "tail": tail if exact else "all"}
        if since is not None:
            options["since"] = int(since.timestamp())
        if until is not None:
            options["until"] = int(until.timestamp()) + 1
        try:
            raw: bytes = await _call(lambda: container.logs(**options))
        except docker.errors.APIError as e:
            raise LaunchError(f"cannot read the logs of {self.name}: {_explain(e)}", 0) from e
        lines = []
        for line in raw.decode(errors="replace").splitlines():
            stamp, _, text = line.partition(" ")
            moment = _docker_time(stamp)
            if moment is None:
                continue
            if (since is None or moment >= since) and (until is None or moment <= until):
                lines.append(LogLine(moment, text))
        if tail is not None:
            lines = lines[max(0, len(lines) - tail) :]
        return lines

    def kill_now(self) -> None:
        container = self._container
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.kill()

    async def _pull(self) -> None:
        image = self._spec.image
        if self._spec.image_pull_policy == "never":
            return
        try:
            await _call(lambda: self._client.images.pull(image, auth_config=self._credential))
        except docker.errors.APIError as e:
            raise LaunchError(
                f"cannot pull image {image}: {_explain(e)}", _ENGINE_FAILED_EXIT_CODE
            ) from e

    def _create(self) -> Container:
        api = self._client.api
        # A container of this name left by a simulator that died is ours to replace.
        with contextlib.suppress(docker.errors.NotFound):
            old = self._client.containers.get(self.name)
            if old.labels.get(SCOPE_LABEL) == self._settings.scope:
                old.remove(force=True, v=True)
        for volume in _named_volumes(self.config):
            self._ensure_volume(volume)
        try:
            created = api.create_container_from_config(
                dict(self.config), name=self.name, platform=self._settings.platform
            )
        except docker.errors.APIError as e:
            raise LaunchError(
                f"cannot create container {self.name}: {_explain(e)}", _ENGINE_FAILED_EXIT_CODE
            ) from e
        return self._client.containers.get(created["Id"])

    def _ensure_volume(self, name: str) -> None:
        """Create a named volume as Docker would on first use, labelled with the scope so
        the simulator can find and remove its own volumes later."""
        try:
            self._client.volumes.get(name)
        except docker.errors.NotFound:
            labels = {SCOPE_LABEL: self._settings.scope, DEVICE_LABEL: self._settings.device_id}
            self._client.volumes.create(name, labels=labels)

    def _follow_logs(self, container: Container, log_file: BinaryIO) -> None:
        since = self.started_at

        def pump() -> None:
            pending = b""
            try:
                stream: Iterator[bytes] = container.logs(stream=True, follow=True, since=since)
                for chunk in stream:
                    if not log_file.closed:
                        log_file.write(chunk)
                    if self._settings.echo_output:
                        *lines, pending = (pending + chunk).split(b"\n")
                        echo_lines(self._spec.name, lines)
            except (docker.errors.APIError, OSError, ValueError) as e:
                _log.debug("log stream of %s ended: %s", self.name, e)
            if pending and self._settings.echo_output:
                echo_lines(self._spec.name, [pending])

        self._log_thread = threading.Thread(target=pump, name=f"logs:{self.name}", daemon=True)
        self._log_thread.start()

    async def _join_logs(self) -> None:
        thread, self._log_thread = self._log_thread, None
        if thread is not None:
            # The stream ends with the container; the bound is for an engine that hangs.
            await asyncio.to_thread(thread.join, 5.0)


async def _call(fn: Callable[[], T]) -> T:
    """A short Docker SDK call, off the loop."""
    return await asyncio.to_thread(fn)


def _in_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """A long-blocking call in a daemon thread of its own, as a future on this loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (fn(), None)
        except BaseException as e:  # handed to the awaiting task, which decides
            outcome = (None, e)
        # The loop may be gone when an engine call outlives the simulator.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, daemon=True).start()
    return future


def _explain(error: docker.errors.APIError) -> str:
    explanation = error.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or error)


def _docker_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds, which datetime cannot hold."""
    if not text or text.startswith("0001-"):
        return None
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(trimmed).astimezone(UTC)
