"""One module's local process, supervised under edgeAgent's restart policy.

Each module runs in its own session (``start_new_session``), so its process group holds the
module and everything it spawns: stopping signals the whole group, and when the module's main
process exits on its own the rest of the group is killed, as Docker does when a container's
PID 1 exits. Nothing a module starts outlives it, nor the simulator: the module dies with the
simulator's process, and a pid file beside its log lets the next ``up`` stop what it left
(``simulator.child_processes``).

Output goes through a pipe this class creates itself rather than one owned by the asyncio
subprocess transport: in Python 3.11 ``Process.wait()`` only returns once every pipe it owns is
closed, so a grandchild holding stdout would hide the module's exit.

Restart timing follows edgeAgent's RestartPolicyManager (see ``BackoffPolicy``). A restart
keeps the generation id: edgeAgent restarts the same container, it does not recreate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from simulator.child_processes import PID_SUFFIX, PidFile, dies_with_parent
from simulator.deployment.manifest import RestartPolicy

__all__ = ["BackoffPolicy", "Launch", "ModuleProcess", "ModuleReport", "RuntimeStatus"]

_log = logging.getLogger(__name__)

# A process that could not be exec'd reports what a shell would for a missing command.
_SPAWN_FAILED_EXIT_CODE = 127
# After the main process exits and its group is killed, the output pipe reaches EOF at once;
# this only bounds the wait when something outside the group still holds the pipe.
_PUMP_DRAIN_S = 2.0
_READ_CHUNK_BYTES = 65536


class RuntimeStatus(StrEnum):
    """edgeAgent's ``runtimeStatus`` values that a local process can be in."""

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


@dataclass(frozen=True)
class Launch:
    """What to exec for a module: the local stand-in for its image."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path | None = None


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


class ModuleProcess:
    """Starts, restarts and stops one module's process group. Create one per (re)creation."""

    def __init__(
        self,
        name: str,
        launch: Launch,
        restart_policy: RestartPolicy,
        generation_id: str,
        log_path: Path,
        backoff: BackoffPolicy,
        echo_output: bool = False,
    ) -> None:
        self.name = name
        self._launch = launch
        self._policy = restart_policy
        self._generation_id = generation_id
        self._log_path = log_path
        self._backoff = backoff
        self._echo = echo_output
        self._log_file: BinaryIO | None = None
        self._pid_file = PidFile(log_path.with_suffix(PID_SUFFIX))
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._grace_s = 10.0
        self._status = RuntimeStatus.STOPPED
        self._description = "not started"
        self._exit_code: int | None = None
        self._exit_reason = ""
        self._restart_count = 0
        self._started_mono = 0.0
        self._start_time: datetime | None = None
        self._exit_time: datetime | None = None
        self._restart_time: datetime | None = None

    async def start(self) -> None:
        """Spawn the first process before returning, so callers can sequence startupOrder."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self._log_path.open("ab", buffering=0)
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name=f"module:{self.name}")

    async def stop(self, grace_s: float) -> None:
        """SIGTERM the group, SIGKILL it after ``grace_s`` (docker stop's contract)."""
        self._grace_s = grace_s
        self._stop_requested.set()
        if self._task is not None:
            await self._task
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill_now(self) -> None:
        """Last-resort synchronous SIGKILL of the group, for finalizers when the loop is gone."""
        if self._proc is not None and self._proc.returncode is None:
            _signal_group(self._proc.pid, signal.SIGKILL)

    def report(self) -> ModuleReport:
        proc = self._proc
        return ModuleReport(
            name=self.name,
            runtime_status=self._status,
            status_description=self._description,
            pid=proc.pid if proc is not None and proc.returncode is None else None,
            exit_code=self._exit_code,
            restart_count=self._restart_count,
            generation_id=self._generation_id,
            last_start_time=self._start_time,
            last_exit_time=self._exit_time,
            last_restart_time=self._restart_time,
        )

    async def _spawn(self) -> None:
        self._started_mono = time.monotonic()
        self._start_time = datetime.now(UTC)
        read_fd, write_fd = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._launch.argv,
                cwd=self._launch.cwd,
                env=dict(self._launch.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                preexec_fn=dies_with_parent(),
            )
        except OSError as e:
            os.close(read_fd)
            self._proc = None
            self._exit_reason = f"cannot start {self._launch.argv[0]!r}: {e}"
            self._note(self._exit_reason)
            return
        finally:
            os.close(write_fd)
        self._pid_file.write(self._proc.pid)
        self._pump = asyncio.create_task(self._pump_output(read_fd), name=f"output:{self.name}")
        self._status = RuntimeStatus.RUNNING
        self._description = "running"
        self._note(f"started pid={self._proc.pid} generation={self._generation_id}")

    async def _supervise(self) -> None:
        try:
            while True:
                exit_code = await self._wait_exit()
                if self._stop_requested.is_set():
                    self._settle(RuntimeStatus.STOPPED, f"stopped (exit code {exit_code})")
                    return
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay_s)
                if self._stop_requested.is_set():
                    self._settle(RuntimeStatus.STOPPED, "stopped during backoff")
                    return
                self._restart_count += 1
                self._restart_time = datetime.now(UTC)
                await self._spawn()
        finally:
            # Also reached when this task is cancelled: never leave the group behind.
            self.kill_now()
            if self._pump is not None:
                self._pump.cancel()

    async def _wait_exit(self) -> int:
        proc = self._proc
        if proc is None:
            self._exit_code = _SPAWN_FAILED_EXIT_CODE
            self._exit_time = datetime.now(UTC)
            return _SPAWN_FAILED_EXIT_CODE
        exited = asyncio.create_task(proc.wait())
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            exited.cancel()
            raise
        finally:
            stop.cancel()
        if not exited.done():
            _signal_group(proc.pid, signal.SIGTERM)
            done, _ = await asyncio.wait({exited}, timeout=self._grace_s)
            if not done:
                self._note(f"did not stop within {self._grace_s:g} s; killing")
                _signal_group(proc.pid, signal.SIGKILL)
        returncode = await exited
        # The main process is gone; whatever it left in its group goes with it.
        _signal_group(proc.pid, signal.SIGKILL)
        self._pid_file.remove()
        await self._drain_output()
        # Docker reports death by signal N as 128 + N (137 for SIGKILL); so does edgeAgent.
        exit_code = returncode if returncode >= 0 else 128 - returncode
        self._exit_code = exit_code
        self._exit_reason = f"exited with {exit_code}"
        self._exit_time = datetime.now(UTC)
        self._note(f"exited code={exit_code}")
        return exit_code

    async def _drain_output(self) -> None:
        pump, self._pump = self._pump, None
        if pump is None:
            return
        done, _ = await asyncio.wait({pump}, timeout=_PUMP_DRAIN_S)
        if not done:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _pump_output(self, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        pending = b""
        try:
            while chunk := await reader.read(_READ_CHUNK_BYTES):
                if self._log_file is not None:
                    self._log_file.write(chunk)
                if self._echo:
                    *lines, pending = (pending + chunk).split(b"\n")
                    if len(pending) > _READ_CHUNK_BYTES:
                        # Bounded: output without newlines is echoed in pieces.
                        lines.append(pending)
                        pending = b""
                    self._echo_lines(lines)
            if pending and self._echo:
                self._echo_lines([pending])
        finally:
            transport.close()

    def _echo_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            sys.stderr.write(f"[{self.name}] {line.decode(errors='replace')}\n")
        sys.stderr.flush()

    def _settle(self, status: RuntimeStatus, description: str) -> None:
        self._status = status
        self._description = description

    def _note(self, text: str) -> None:
        """A runtime line in the module's log, so restarts can be read beside its output."""
        _log.info("module %s: %s", self.name, text)
        if self._log_file is not None:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            self._log_file.write(f"--- {stamp} runtime: {text}\n".encode())


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    # The group id is the main process's pid (start_new_session). It cannot be handed to
    # another group while any member lives, and we signal right after the main process exits.
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass  # the group is already empty
    except PermissionError:
        _log.warning("process group %d is no longer ours; not signalled", pgid)
