"""Processes the simulator starts (modules, Azurite) never outlive it, even killed by SIGKILL.

Two layers, since neither covers everything alone:

- a parent-death signal: each child gets SIGKILL from the kernel the moment the simulator
  dies, however it dies (Linux's ``PR_SET_PDEATHSIG``, set between fork and exec). It
  reaches the child only, not what the child started in its process group;
- a pid file per child in the state directory (``PidFile``), naming the child's process group
  and the simulator that started it, removed once the group is gone. The next ``up`` on that
  directory stops each group whose simulator is dead (``reap``): a module's own children, and
  anything the signal could not reach.

Pids are reused, so each pid in a file comes with the process's start time (``/proc``'s
clock ticks since boot) and the boot's id: a process is the one recorded only if both match.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PID_SUFFIX = ".pid"
_KIND = "simulator-child"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die by SIGKILL when this process dies.

    None where the kernel has no parent-death signal (only Linux has one); pid files and
    ``reap`` still apply there. The signal fires when the *thread* that forked the child
    ends: the simulator starts children from its event loop, which lives as long as it does.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Loaded here, in the parent: nothing may be imported or opened between fork and exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@dataclass(frozen=True)
class _Process:
    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> _Process | None:
        ticks = _start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    def is_running(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks


class PidFile:
    """One child's pid file: its process group (the child leads it: ``start_new_session``)
    and the simulator process that started it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pid: int) -> None:
        child, parent = _Process.of(pid), _Process.of(os.getpid())
        if child is None or parent is None:
            return  # already gone, or no /proc: nothing to find later
        record = {
            "kind": _KIND,
            "boot": _boot_id(),
            "pid": child.pid,
            "start": child.start_ticks,
            "parent": parent.pid,
            "parentStart": parent.start_ticks,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def reap(state_dir: Path) -> list[str]:
    """Kill every process group that a dead simulator left running in ``state_dir``;
    returns what was killed ("pid N: command line"), for the operator."""
    killed: list[str] = []
    if not state_dir.is_dir():
        return killed
    boot = _boot_id()
    for path in state_dir.rglob(f"*{PID_SUFFIX}"):
        record = _read(path)
        if record is None:
            continue
        if record.boot == boot:
            if record.parent.is_running():
                continue  # its simulator still runs: not ours to stop
            killed += _kill_group(record.child)
        path.unlink(missing_ok=True)  # after a reboot nothing it names can be running
    return killed


def _kill_group(leader: _Process) -> list[str]:
    """SIGKILL what is left of the process group ``leader`` led.

    Linux hands a pid out again only once no process has it as its pid or group id. So a
    live process with the leader's pid but another start time means the group is long gone;
    with the leader's pid unused, the processes still in its group are its own (a group of
    someone else's with that id would need the pid reused, its new owner to lead a group and
    die first: the members' start times rule out most of that too).
    """
    current = _start_ticks(leader.pid)
    if current is not None and current != leader.start_ticks:
        return []
    killed = []
    for pid, ticks in _group_members(leader.pid):
        if ticks < leader.start_ticks:
            continue
        described = f"pid {pid}: {_command_line(pid)}"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(described)
    if current is not None and not any(line.startswith(f"pid {leader.pid}:") for line in killed):
        # The leader is alive but left its group: it goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            described = f"pid {leader.pid}: {_command_line(leader.pid)}"
            os.kill(leader.pid, signal.SIGKILL)
            killed.append(described)
    return killed


@dataclass(frozen=True)
class _Record:
    boot: str
    child: _Process
    parent: _Process


def _read(path: Path) -> _Record | None:
    """A pid file this module wrote; None for anything else that ends in ``.pid``."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("kind") != _KIND:
            return None
        return _Record(
            str(data["boot"]),
            _Process(int(data["pid"]), int(data["start"])),
            _Process(int(data["parent"]), int(data["parentStart"])),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _proc_stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 on (after the command name, which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return None if fields is None else int(fields[19])


def _group_members(pgid: int) -> list[tuple[int, int]]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and int(fields[2]) == pgid:
                members.append((int(entry.name), int(fields[19])))
    return members


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


async def terminate_group(process: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
    """SIGTERM a child started in a session of its own, its whole group; SIGKILL after
    ``grace_s``; return once it has exited."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
