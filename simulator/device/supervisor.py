"""One created module, supervised under edgeAgent's restart policy, whatever runs it.

A backend (local process groups, or containers through the Docker Engine API) creates a
:class:`ModuleInstance` per (re)creation; the :class:`ModuleSupervisor` here starts it, waits
for it to exit, restarts it under the restart policy with edgeAgent's backoff, and keeps the
report edgeAgent sends. Restart rules are written once, so both backends restart alike.

Restart timing follows edgeAgent's RestartPolicyManager (see ``BackoffPolicy``). A restart
keeps the generation id: edgeAgent restarts the same container, it does not recreate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

from simulator.deployment.manifest import RestartPolicy

__all__ = [
    "BackoffPolicy",
    "LaunchError",
    "LogLine",
    "ModuleInstance",
    "ModuleReport",
    "ModuleSupervisor",
    "RuntimeStatus",
    "should_restart",
]

_log = logging.getLogger(__name__)


class RuntimeStatus(StrEnum):
    """edgeAgent's ``runtimeStatus`` values that a simulated module can be in."""

    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class BackoffPolicy:
    """When to restart a module that exited, after edgeAgent's defaults.

    edgeAgent (appsettings_agent.json, RestartPolicyManager): CoolOffTimeUnitInSeconds 10,
    MaxCoolOffPeriodSecs 300, IntensiveCareTimeInMinutes 10, MaxRestartCount 20. Its cool-off
    is ``min(unit * 2**restartCount, 300 s)``; here the first restart is immediate and later
    ones wait ``unit * 2**(n-1)`` (0, 10, 20, 40 ... 300 s), so a one-off crash costs nothing.
    A module that stayed up ``stable_after_s`` before exiting has its crash count reset.
    After ``max_restarts`` restarts without such a reset the module is left ``failed``;
    ``None`` restarts for ever.
    """

    unit_s: float = 10.0
    max_s: float = 300.0
    stable_after_s: float = 600.0
    max_restarts: int | None = 20

    def delay_s(self, restarts_so_far: int) -> float:
        if restarts_so_far <= 0:
            return 0.0
        return float(min(self.unit_s * 2 ** (restarts_so_far - 1), self.max_s))


def should_restart(policy: RestartPolicy, exit_code: int) -> bool:
    """edgeAgent's rule. No health probes exist, so on-unhealthy acts as on-failure (so does
    edgeAgent: it restarts on-unhealthy modules that failed)."""
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy in (RestartPolicy.ON_FAILURE, RestartPolicy.ON_UNHEALTHY):
        return exit_code != 0
    return False


class LaunchError(Exception):
    """A module could not be started at all (no such command, an image that cannot be
    pulled or created). ``exit_code`` is what edgeAgent reports for it."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


@dataclass(frozen=True)
class LogLine:
    """One line of a module's output (stdout and stderr together), without its newline,
    stamped with the time the runtime received it (UTC), as ``docker logs --timestamps``."""

    timestamp: datetime
    text: str


class ModuleInstance(Protocol):
    """One created module as a backend runs it: a process group, or a container.

    ``launch`` starts it (again, after an exit: a restart reuses the instance); ``wait_exit``
    returns its exit code, stopping it first (SIGTERM, then SIGKILL after ``grace_s``) if
    ``stop`` is set before it exits; ``discard`` frees what it holds once it is stopped for
    good; ``kill_now`` is a synchronous last resort for finalizers. ``read_logs`` returns
    what it has written, across restarts, for edgeAgent's log methods.
    """

    @property
    def identity(self) -> str:
        """What runs it now, for the log and the report: ``pid=...`` or ``container=...``."""
        ...

    @property
    def pid(self) -> int | None: ...

    @property
    def started_at(self) -> datetime | None:
        """When the current run started, as the backend knows it (a container's StartedAt)."""
        ...

    async def launch(self, log_file: BinaryIO) -> None: ...

    async def wait_exit(self, stop: asyncio.Event, grace_s: float) -> int: ...

    async def discard(self) -> None: ...

    def kill_now(self) -> None: ...

    async def read_logs(
        self, since: datetime | None, until: datetime | None, tail: int | None
    ) -> list[LogLine]:
        """Its output lines, oldest first: those stamped ``since <= t <= until`` (either bound
        may be absent), then only the last ``tail`` of them (None: all)."""
        ...


@dataclass(frozen=True)
class ModuleReport:
    """A module's state, with the fields edgeAgent reports (plus pid and generation id)."""

    name: str
    runtime_status: RuntimeStatus
    status_description: str
    pid: int | None
    exit_code: int | None
    restart_count: int
    generation_id: str | None
    last_start_time: datetime | None
    last_exit_time: datetime | None
    last_restart_time: datetime | None


class ModuleSupervisor:
    """Starts, restarts and stops one created module. Create one per (re)creation."""

    def __init__(
        self,
        name: str,
        instance: ModuleInstance,
        restart_policy: RestartPolicy,
        generation_id: str,
        log_path: Path,
        backoff: BackoffPolicy,
        stop_grace_s: float,
    ) -> None:
        self.name = name
        self.instance = instance
        self._policy = restart_policy
        self._generation_id = generation_id
        self._log_path = log_path
        self._backoff = backoff
        self._log_file: BinaryIO | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._restart_requested = asyncio.Event()
        self._grace_s = stop_grace_s
        self._status = RuntimeStatus.STOPPED
        self._description = "not started"
        self._exit_code: int | None = None
        self._exit_reason = ""
        self._launched = False
        self._restart_count = 0
        self._started_mono = 0.0
        self._start_time: datetime | None = None
        self._exit_time: datetime | None = None
        self._restart_time: datetime | None = None

    async def start(self) -> None:
        """Launch the first run before returning, so callers can sequence startupOrder."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self._log_path.open("ab", buffering=0)
        await self._launch()
        self._task = asyncio.create_task(self._supervise(), name=f"module:{self.name}")

    async def stop(self) -> None:
        """Stop the module (docker stop's contract: SIGTERM, SIGKILL after the grace period)
        and discard what its backend holds."""
        self._stop_requested.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            try:
                await self.instance.discard()
            finally:
                self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def restart(self) -> None:
        """Stop the running module and start it again at once, as edgeAgent's
        ``RestartModule`` does: the restart count and backoff are left as they were."""
        if self._task is None or self._task.done():
            raise LaunchError(f"{self.name} is not supervised (stopped or failed)", 0)
        self._restart_requested.set()

    def kill_now(self) -> None:
        """Last-resort synchronous kill, for finalizers when the loop is gone."""
        self.instance.kill_now()

    def report(self) -> ModuleReport:
        return ModuleReport(
            name=self.name,
            runtime_status=self._status,
            status_description=self._description,
            pid=self.instance.pid if self._status is RuntimeStatus.RUNNING else None,
            exit_code=self._exit_code,
            restart_count=self._restart_count,
            generation_id=self._generation_id,
            last_start_time=self._start_time,
            last_exit_time=self._exit_time,
            last_restart_time=self._restart_time,
        )

    async def _launch(self) -> None:
        assert self._log_file is not None
        self._started_mono = time.monotonic()
        self._start_time = datetime.now(UTC)
        try:
            await self.instance.launch(self._log_file)
        except LaunchError as e:
            self._launched = False
            self._exit_code = e.exit_code
            self._exit_reason = e.reason
            self._status = RuntimeStatus.FAILED
            self._description = e.reason
            self._note(e.reason)
            return
        self._launched = True
        self._start_time = self.instance.started_at or self._start_time
        self._status = RuntimeStatus.RUNNING
        self._description = "running"
        self._note(f"started {self.instance.identity} generation={self._generation_id}")

    async def _supervise(self) -> None:
        settled = False
        try:
            await self._restart_loop()
            settled = True
        except Exception as e:
            # A backend that fails in a way it did not foresee (an engine that went away)
            # must not leave a report that says "running" for ever.
            _log.exception("module %s: supervision failed", self.name)
            self._settle(RuntimeStatus.FAILED, f"the runtime lost the module: {e}")
            self._note(f"supervision failed: {e!r}")
        finally:
            # Reached when this task is cancelled, or failed: never leave the module running.
            if not settled:
                with contextlib.suppress(Exception):
                    self.instance.kill_now()

    async def _restart_loop(self) -> None:
        while True:
            exit_code = await self._wait_exit()
            if self._stop_requested.is_set():
                self._settle(RuntimeStatus.STOPPED, f"stopped (exit code {exit_code})")
                return
            if self._restart_requested.is_set():
                self._restart_requested.clear()
                self._restart_time = datetime.now(UTC)
                self._note("restarted on request")
                await self._launch()
                continue
            if time.monotonic() - self._started_mono >= self._backoff.stable_after_s:
                self._restart_count = 0
            if not should_restart(self._policy, exit_code):
                status = RuntimeStatus.STOPPED if exit_code == 0 else RuntimeStatus.FAILED
                self._settle(status, f"{self._exit_reason}; restartPolicy {self._policy}")
                return
            limit = self._backoff.max_restarts
            if limit is not None and self._restart_count >= limit:
                self._settle(
                    RuntimeStatus.FAILED,
                    f"{self._exit_reason}; gave up after {limit} restarts",
                )
                return
            delay_s = self._backoff.delay_s(self._restart_count)
            self._status = RuntimeStatus.BACKOFF
            self._description = f"{self._exit_reason}; restarting in {delay_s:g} s"
            # A restart requested during the backoff starts the module at once.
            wake = _either(self._stop_requested, self._restart_requested)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay_s)
            finally:
                wake.close()
            if self._stop_requested.is_set():
                self._settle(RuntimeStatus.STOPPED, "stopped during backoff")
                return
            if self._restart_requested.is_set():
                self._restart_requested.clear()
                self._note("restarted on request during backoff")
            else:
                self._restart_count += 1
            self._restart_time = datetime.now(UTC)
            self._description = f"{self._exit_reason}; restarting"
            await self._launch()

    async def _wait_exit(self) -> int:
        if not self._launched:
            self._exit_time = datetime.now(UTC)
            assert self._exit_code is not None
            return self._exit_code
        stop = _either(self._stop_requested, self._restart_requested)
        try:
            exit_code = await self.instance.wait_exit(stop, self._grace_s)
        finally:
            stop.close()
        self._exit_code = exit_code
        self._exit_reason = f"exited with {exit_code}"
        self._exit_time = datetime.now(UTC)
        self._note(f"exited code={exit_code}")
        return exit_code

    def _settle(self, status: RuntimeStatus, description: str) -> None:
        self._status = status
        self._description = description

    def _note(self, text: str) -> None:
        """A runtime line in the module's log, so restarts can be read beside its output."""
        _log.info("module %s: %s", self.name, text)
        if self._log_file is not None:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            self._log_file.write(f"--- {stamp} runtime: {text}\n".encode())


class _EitherEvent(asyncio.Event):
    """Set once either of two events is set (a stop or a restart request)."""

    def __init__(self, first: asyncio.Event, second: asyncio.Event) -> None:
        super().__init__()
        self._watchers = [
            asyncio.create_task(self._follow(first)),
            asyncio.create_task(self._follow(second)),
        ]

    async def _follow(self, event: asyncio.Event) -> None:
        await event.wait()
        self.set()

    def close(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()


def _either(first: asyncio.Event, second: asyncio.Event) -> _EitherEvent:
    return _EitherEvent(first, second)
