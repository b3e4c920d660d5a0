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
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container

from simulator.deployment.manifest import DeploymentManifest, ModuleSpec
from simulator.device.container_config import (
    DEVICE_LABEL,
    OWNER,
    OWNER_LABEL,
    SCOPE_LABEL,
    WORKLOAD_SOCKET_IN_CONTAINER,
    ContainerSettings,
    container_config,
    named_volumes,
    registry_credential,
)
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

# docker run's exit status when the engine itself failed (pull, create): edgeAgent has no
# exit code for a module it could not create, and the restart rules need one.
_ENGINE_FAILED_EXIT_CODE = 125
# What the engine's client raises: the engine's refusals, and a connection that failed.
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)
# A module image is a few hundred MB; a pull slower than this is a registry that stalled.
PULL_TIMEOUT_S = 600.0

T = TypeVar("T")


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
        try:
            container = await self._start()
        except LaunchError:
            raise
        except _ENGINE_ERRORS as e:
            raise LaunchError(
                f"cannot start container {self.name}: {_explain(e)}", _ENGINE_FAILED_EXIT_CODE
            ) from e
        self.started_at = _docker_time(container.attrs["State"].get("StartedAt"))
        self._follow_logs(container, log_file)

    async def _start(self) -> Container:
        if self._container is not None:
            try:
                await _call(self._container.start)
            except docker.errors.NotFound:
                # Removed behind the runtime's back: created again, as edgeAgent would.
                self._container = None
        if self._container is None:
            await self._pull()
            created: Container = await _call(self._create)
            self._container = created
            await _call(created.start)
        container: Container = self._container
        await _call(container.reload)
        return container

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
            with contextlib.suppress(*_ENGINE_ERRORS):
                # docker stop: SIGTERM (or the image's StopSignal), SIGKILL after grace_s.
                await _call(lambda: container.stop(timeout=max(1, round(grace_s))))
        try:
            result = await exited
        except _ENGINE_ERRORS as e:
            # The engine went away or the container with it: the module is not running.
            _log.warning("container %s: lost while waiting for its exit: %s", self.name, e)
            result = {"StatusCode": _ENGINE_FAILED_EXIT_CODE}
        await self._join_logs()
        with contextlib.suppress(*_ENGINE_ERRORS):
            await _call(container.reload)
        return int(result.get("StatusCode", _ENGINE_FAILED_EXIT_CODE))

    async def discard(self) -> None:
        """Remove the container (its named volumes stay, as Docker keeps them)."""
        container, self._container = self._container, None
        # None: never created, or created by a call that was cancelled; removed by name then.
        with contextlib.suppress(*_ENGINE_ERRORS):
            await _call(lambda: self._remove(container))
        await self._join_logs()

    def _remove(self, container: Container | None) -> None:
        if container is None:
            try:
                container = self._client.containers.get(self.name)
            except docker.errors.NotFound:
                return
            if container.labels.get(SCOPE_LABEL) != self._settings.scope:
                return
        with contextlib.suppress(docker.errors.NotFound):
            # v: its anonymous volumes go with it (named volumes stay, as with docker rm -v).
            container.remove(force=True, v=True)

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
        except _ENGINE_ERRORS as e:
            raise LaunchError(f"cannot read the logs of {self.name}: {_explain(e)}", 0) from e
        lines = []
        # Only a newline ends a line: a carriage return (a progress bar) stays in its text.
        for line in raw.decode(errors="replace").split("\n"):
            stamp, _, text = line.partition(" ")
            try:
                moment = _docker_time(stamp)
            except ValueError:
                moment = None
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
            with contextlib.suppress(*_ENGINE_ERRORS):
                container.kill()

    async def _pull(self) -> None:
        image = self._spec.image
        if self._spec.image_pull_policy == "never":
            return
        platform = self._settings.platform
        pulled = _in_thread(
            lambda: self._client.images.pull(image, auth_config=self._credential, platform=platform)
        )
        try:
            # A stalled registry must not hold the runtime (and its shutdown) for ever.
            await asyncio.wait_for(pulled, PULL_TIMEOUT_S)
        except TimeoutError as e:
            raise LaunchError(
                f"cannot pull image {image}: no answer in {PULL_TIMEOUT_S:g} s",
                _ENGINE_FAILED_EXIT_CODE,
            ) from e
        except _ENGINE_ERRORS as e:
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
        try:
            for volume in named_volumes(self.config):
                self._ensure_volume(volume)
            created = api.create_container_from_config(
                dict(self.config), name=self.name, platform=self._settings.platform
            )
        except _ENGINE_ERRORS as e:
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
        # A float: docker-py would cut a datetime to whole seconds, and repeat the last lines
        # of a run that ended in the second this one started.
        since = self.started_at.timestamp() if self.started_at else None

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


def _explain(error: Exception) -> str:
    explanation = getattr(error, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or error)


def _docker_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds, which datetime cannot hold."""
    if not text or text.startswith("0001-"):
        return None
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(trimmed).astimezone(UTC)
