"""Modules as local process groups: the simulator's default backend, with no container engine.

A mapping from module name to a local command (:class:`ModuleCommand`) stands in for each
module's image. Each module runs in its own session (``start_new_session``), so its process
group holds the module and everything it spawns: stopping signals the whole group, and when
the module's main process exits on its own the rest of the group is killed, as Docker does
when a container's PID 1 exits. Nothing a module starts outlives it, nor the simulator: the
module dies with the simulator's process, and a pid file beside its log lets the next ``up``
stop what it left (``simulator.child_processes``).

Every output line is also kept with its arrival time (``line_log.py``, beside the raw
``<module>.log``), which is what edgeAgent's log methods read.

Output goes through a pipe this module creates itself rather than one owned by the asyncio
subprocess transport: in Python 3.11 ``Process.wait()`` only returns once every pipe it owns is
closed, so a grandchild holding stdout would hide the module's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from simulator.child_processes import PID_SUFFIX, PidFile, dies_with_parent
from simulator.deployment.manifest import DeploymentManifest, DesiredStatus, ModuleSpec
from simulator.device.line_log import TimestampedLineLog, timestamped_log_path
from simulator.device.supervisor import LaunchError, LogLine

__all__ = ["ModuleCommand", "ProcessBackend", "ProcessInstance", "process_environment"]

_log = logging.getLogger(__name__)

# A process that could not be exec'd reports what a shell would for a missing command.
_SPAWN_FAILED_EXIT_CODE = 127
# After the main process exits and its group is killed, the output pipe reaches EOF at once;
# this only bounds the wait when something outside the group still holds the pipe.
_PUMP_DRAIN_S = 2.0
_READ_CHUNK_BYTES = 65536
# Variables that decide a module's identity. A parent's values must never leak into a module.
_IDENTITY_PREFIXES = ("IOTEDGE_",)
_IDENTITY_NAMES = frozenset(
    {"EdgeHubConnectionString", "EdgeModuleCACertificateFile", "RuntimeLogLevel"}
)


@dataclass(frozen=True)
class ModuleCommand:
    """The local stand-in for a module's image.

    ``env`` is applied last, over even the ``IOTEDGE_*`` values, so a test can aim one module
    elsewhere. ``inherit_env`` passes this process's environment (minus identity variables)
    underneath, since a local process needs PATH and friends that an image would carry.
    """

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    inherit_env: bool = True


class ProcessBackend:
    """Runs each module of a manifest as the local command mapped to its name.

    ``skip_unmapped``: modules without a command are left stopped (tests connect some
    modules themselves) instead of refusing the manifest.
    """

    kind = "process"

    def __init__(
        self,
        commands: Mapping[str, ModuleCommand],
        *,
        echo_output: bool = False,
        skip_unmapped: bool = False,
    ) -> None:
        self._commands = dict(commands)
        self._echo = echo_output
        self._skip_unmapped = skip_unmapped

    def refusal(self, manifest: DeploymentManifest) -> str | None:
        """Why ``manifest`` cannot run here, or None."""
        if self._skip_unmapped:
            return None
        missing = sorted(
            name
            for name, spec in manifest.modules.items()
            if spec.status is DesiredStatus.RUNNING and name not in self._commands
        )
        if missing:
            return f"no local command for module(s): {', '.join(missing)}"
        return None

    def idle_reason(self, spec: ModuleSpec) -> str | None:
        """Why a running module of the manifest is not started, or None when it is."""
        if spec.name not in self._commands:
            return "no local command for this module"
        return None

    def create(
        self, spec: ModuleSpec, runtime_env: Mapping[str, str], manifest: DeploymentManifest
    ) -> ProcessInstance:
        command = self._commands[spec.name]
        env = process_environment(runtime_env, command)
        return ProcessInstance(spec.name, list(command.argv), env, command.cwd, self._echo)


def process_environment(
    runtime_env: Mapping[str, str],
    command: ModuleCommand,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A module process's environment: the inherited ``base`` (this process's by default)
    without identity variables, then what the runtime gives every module, then the
    command's own extras."""
    env: dict[str, str] = {}
    if command.inherit_env:
        source = os.environ if base is None else base
        env.update(
            (k, v)
            for k, v in source.items()
            if k not in _IDENTITY_NAMES and not k.startswith(_IDENTITY_PREFIXES)
        )
    env.update(runtime_env)
    env.update(command.env)
    return env


class ProcessInstance:
    """One module's process group; ``launch`` again after an exit restarts it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None,
        echo_output: bool,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self._cwd = cwd
        self._echo = echo_output
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._log_file: BinaryIO | None = None
        self.started_at: datetime | None = None
        self._lines: TimestampedLineLog | None = None
        self._pid_file: PidFile | None = None

    @property
    def identity(self) -> str:
        return f"pid={self.pid}"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def launch(self, log_file: BinaryIO) -> None:
        self._log_file = log_file
        self.started_at = datetime.now(UTC)
        if self._lines is None:
            self._lines = TimestampedLineLog(timestamped_log_path(Path(log_file.name)))
        if self._pid_file is None:
            self._pid_file = PidFile(Path(log_file.name).with_suffix(PID_SUFFIX))
        read_fd, write_fd = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self._cwd,
                env=dict(self.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                preexec_fn=dies_with_parent(),
            )
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            # ValueError: an environment value holding a NUL byte.
            os.close(read_fd)
            self._proc = None
            raise LaunchError(f"cannot start {self.argv[0]!r}: {e}", _SPAWN_FAILED_EXIT_CODE) from e
        finally:
            os.close(write_fd)
        self._pid_file.write(self._proc.pid)
        self._pump = asyncio.create_task(self._pump_output(read_fd), name=f"output:{self.name}")

    async def wait_exit(self, stop: asyncio.Event, grace_s: float) -> int:
        proc = self._proc
        assert proc is not None
        exited = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            exited.cancel()
            raise
        finally:
            stopping.cancel()
        if not exited.done():
            _signal_group(proc.pid, signal.SIGTERM)
            done, _ = await asyncio.wait({exited}, timeout=grace_s)
            if not done:
                _log.info("module %s did not stop within %g s; killing", self.name, grace_s)
                _signal_group(proc.pid, signal.SIGKILL)
        returncode = await exited
        # The main process is gone; whatever it left in its group goes with it.
        _signal_group(proc.pid, signal.SIGKILL)
        if self._pid_file is not None:
            self._pid_file.remove()
        await self._drain_output()
        # Docker reports death by signal N as 128 + N (137 for SIGKILL); so does edgeAgent.
        return returncode if returncode >= 0 else 128 - returncode

    async def discard(self) -> None:
        await self._drain_output()
        if self._lines is not None:
            self._lines.close()

    async def read_logs(
        self, since: datetime | None, until: datetime | None, tail: int | None
    ) -> list[LogLine]:
        lines = self._lines
        if lines is None:
            return []
        return await asyncio.to_thread(lines.read, since, until, tail)

    def kill_now(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            _signal_group(self._proc.pid, signal.SIGKILL)
        if self._pump is not None:
            self._pump.cancel()

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
                if self._log_file is not None and not self._log_file.closed:
                    self._log_file.write(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                if len(pending) > _READ_CHUNK_BYTES:
                    # Bounded: output without newlines is kept (and echoed) in pieces.
                    lines.append(pending)
                    pending = b""
                self._keep_lines(lines)
            if pending:
                self._keep_lines([pending])
        finally:
            transport.close()

    def _keep_lines(self, lines: list[bytes]) -> None:
        if self._lines is not None:
            self._lines.append(lines, datetime.now(UTC))
        if self._echo:
            echo_lines(self.name, lines)


def echo_lines(module: str, lines: Sequence[bytes]) -> None:
    """A module's output lines on the simulator's stderr, each prefixed with its name."""
    for line in lines:
        sys.stderr.write(f"[{module}] {line.decode(errors='replace')}\n")
    sys.stderr.flush()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    # The group id is the main process's pid (start_new_session). It cannot be handed to
    # another group while any member lives, and we signal right after the main process exits.
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass  # the group is already empty
    except PermissionError:
        _log.warning("process group %d is no longer ours; not signalled", pgid)
