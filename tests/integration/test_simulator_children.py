"""Nothing ``python -m simulator up`` starts outlives it, even killed with SIGKILL; the next
``up`` on its state directory stops what an earlier one left; a taken port is an error.

These run the real command in a process of its own and kill it as an operator's
``kill -9`` or the OOM killer would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import child_processes
from simulator.local.blob_storage import AZURITE_BIN
from simulator.mqtt.testing import random_loopback_host
from tests.conftest import REPO
from tests.support.tools import require

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 120.0


def process_table() -> dict[int, tuple[int, int, int, str]]:
    """pid -> (parent pid, process group, start time in clock ticks, command line) of every
    live process (zombies left out)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue  # dead, waiting for its parent (or init) to collect it: not running
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[19]), cmdline)
    return table


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of every process below ``root``."""
    table = process_table()
    found: dict[int, tuple[int, str]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, start, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (start, cmdline)
                frontier.append(pid)
    return found


def still_running(processes: dict[int, tuple[int, str]]) -> dict[int, str]:
    table = process_table()
    return {
        pid: cmdline
        for pid, (start, cmdline) in processes.items()
        if pid in table and table[pid][2] == start
    }


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short, outside pytest's tmp_path: the workload API's unix socket path has a length limit.
    with tempfile.TemporaryDirectory(prefix="up-", dir="/tmp") as folder:
        yield Path(folder)


class Up:
    """``python -m simulator up`` as a process of its own; whatever it started is killed by
    pid (start time checked) when the test ends, whatever happened."""

    def __init__(self, state_dir: Path, address: str, storage_port: int) -> None:
        self.log = (state_dir / "up.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "simulator", "--state-dir", str(state_dir), "up"),
                *("--address", address, "--service-port", "0"),
                *("--storage-port", str(storage_port), "--base-only"),
            ],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.seen: dict[int, tuple[int, str]] = {}

    def wait_for_children(self, *names: str) -> dict[int, tuple[int, str]]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "up exited early (see up.log)"
            self.seen.update(descendants(self.process.pid))
            running = still_running(self.seen)
            if all(any(name in cmd for cmd in running.values()) for name in names):
                return dict(self.seen)
            time.sleep(0.2)
        raise AssertionError(f"up did not start {names} in time: {self.seen}")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def clean_up(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for pid in still_running(self.seen):
            os.kill(pid, signal.SIGKILL)
        self.log.close()


def children_expected() -> tuple[str, ...]:
    names = ["-m classifier"]
    if AZURITE_BIN.exists():
        names.append("azurite-blob")
    return tuple(names)


def test_no_child_outlives_a_sigkilled_up(state_dir: Path) -> None:
    address = random_loopback_host()
    up = Up(state_dir, address, free_port(address))
    try:
        children = up.wait_for_children(*children_expected())
        up.kill()
        deadline = time.monotonic() + 10.0
        while still_running(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert still_running(children) == {}, "children outlived up"
    finally:
        up.clean_up()


def test_a_taken_storage_port_is_an_error_naming_it(state_dir: Path) -> None:
    require(None if AZURITE_BIN.exists() else f"Azurite is not installed at {AZURITE_BIN}")
    address = random_loopback_host()
    with socket.socket() as taken:
        taken.bind((address, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "simulator", "--state-dir", str(state_dir), "up"),
                *("--address", address, "--service-port", "0", "--storage-port", str(port)),
                *("--base-only", "--duration", "30"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0, done.stdout
    assert f"{address}:{port}" in done.stderr and "taken" in done.stderr, done.stderr


# What a simulator killed before it could stop its module: the module's process group (a shell
# and the process it started) and its pid file, written by a process that then died.
DEAD_SIMULATOR = """
import subprocess, sys
from pathlib import Path
from simulator.child_processes import PidFile
module = subprocess.Popen(
    ["sh", "-c", "sleep 300 & exec sleep 301"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    start_new_session=True,
)
PidFile(Path(sys.argv[1])).write(module.pid)
print(module.pid)
"""


def group_of(pgid: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of the members of process group ``pgid``."""
    return {
        pid: (start, cmdline)
        for pid, (_, group, start, cmdline) in process_table().items()
        if group == pgid
    }


def leave_orphans(pid_file: Path) -> dict[int, tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-c", DEAD_SIMULATOR, str(pid_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pgid = int(done.stdout)
    deadline = time.monotonic() + 10
    while len(group_of(pgid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = group_of(pgid)
    assert len(members) == 2, members
    return members


def test_the_next_up_stops_what_a_dead_one_left(state_dir: Path) -> None:
    orphans = leave_orphans(state_dir / "devices" / "edge-device" / "runtime" / "logs" / "m.pid")
    try:
        address = random_loopback_host()
        done = subprocess.run(
            [
                *(sys.executable, "-m", "simulator", "--state-dir", str(state_dir), "up"),
                *("--address", address, "--service-port", "0", "--storage-port", "0"),
                *("--base-only", "--duration", "0.5"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("stopped what an earlier run left: pid") == 2, done.stderr
        # A SIGKILLed process leaves the process table once the kernel has run its exit,
        # which on a loaded machine can take a moment after the signal.
        deadline = time.monotonic() + 10
        while still_running(orphans) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert still_running(orphans) == {}, done.stderr
    finally:
        for pid in still_running(orphans):
            os.kill(pid, signal.SIGKILL)


def test_a_pid_file_naming_a_process_started_at_another_time_stops_nothing(
    state_dir: Path,
) -> None:
    pid_file = state_dir / "m.pid"
    orphans = leave_orphans(pid_file)
    try:
        record = json.loads(pid_file.read_text())
        record["start"] -= 1  # the pid now names another process: as after pid reuse
        pid_file.write_text(json.dumps(record))
        assert child_processes.reap(state_dir) == []
        assert set(still_running(orphans)) == set(orphans)
        assert not pid_file.exists()
    finally:
        for pid in still_running(orphans):
            os.kill(pid, signal.SIGKILL)


def test_a_pid_file_of_a_simulator_still_running_stops_nothing(state_dir: Path) -> None:
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        child_processes.PidFile(state_dir / "m.pid").write(child.pid)
        assert child_processes.reap(state_dir) == []
        assert child.poll() is None
        assert (state_dir / "m.pid").exists()
    finally:
        child.kill()
        child.wait()
