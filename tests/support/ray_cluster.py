"""A real Ray cluster for tests: a head and worker nodes started with ``ray start --block``, in
a network namespace of the test's own where loopback is the only interface.

Why the namespace: Ray's servers (GCS, raylets, object managers) bind every interface, with no
setting to keep them on loopback; inside a fresh namespace there is no other interface to
reach, fixed ports cannot collide with anyone else's Ray, and nothing here touches another
engineer's cluster (never ``ray stop``). Every process is started by the test in a process
group of its own and ended by that group's id: a worker node is killed with its raylet and
its worker processes at once, as a node that dies would.

Needs root (``unshare``/``nsenter``); tests skip without it, and fail in CI
(``EDGE_REQUIRE_TOOLS=1``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

HEAD_PORT = 6379
ADDRESS = f"127.0.0.1:{HEAD_PORT}"
# Small object stores: the machine is shared, and shards return only JSON-sized results.
OBJECT_STORE_BYTES = 80 * 1024 * 1024
RAY = str(Path(sys.executable).with_name("ray"))
# The GCS declares a node dead after ``threshold`` failed checks ``period`` apart (defaults
# 3 s and 5); a timeout much under Ray's 10 s default fails nodes still starting on a busy
# machine, so only the period is shortened.
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
}


def namespaces_unavailable() -> str | None:
    """Why a private network namespace cannot be made here, or None when it can."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    done = subprocess.run(
        ["unshare", "--net", "--", "true"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"cannot create a network namespace (needs root): {done.stderr.strip()}"
    return None


class RayCluster:
    def __init__(self, workers: int, cpus_per_worker: int = 1) -> None:
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        # Ray's socket paths live under the temp dir and must stay short (108 bytes).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self._holder: subprocess.Popen[bytes] | None = None
        self.head: subprocess.Popen[bytes] | None = None
        self.worker_nodes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    # -- the namespace -------------------------------------------------------------------

    def start(self, timeout_s: float = 90.0) -> None:
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--fork", "--kill-child", "sleep", "infinity"],
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while self._netns_of_holder() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        log = self._log("head")
        self.head = self.popen(
            [
                RAY, "start", "--head", "--block", f"--port={HEAD_PORT}",
                "--node-ip-address=127.0.0.1", "--num-cpus=0", "--include-dashboard=false",
                f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
                f"--temp-dir={self.temp_dir}",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=FAST_HEALTH_CHECKS,
        )  # fmt: skip
        self._wait_for(nodes=1, timeout_s=timeout_s)
        for n in range(self.workers):
            # One at a time: two raylets starting together on two busy cores time out.
            self.add_worker()
            self._wait_for(nodes=2 + n, timeout_s=timeout_s)

    def add_worker(self) -> subprocess.Popen[bytes]:
        number = len(self.worker_nodes)
        log = self._log(f"worker-{number}")
        node = self.popen(
            [
                RAY, "start", "--block", f"--address={ADDRESS}", "--node-ip-address=127.0.0.1",
                f"--num-cpus={self.cpus_per_worker}",
                f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=FAST_HEALTH_CHECKS,
        )  # fmt: skip
        self.worker_nodes.append(node)
        return node

    def kill_worker(self, number: int) -> None:
        """The worker node dies at once: its raylet and its worker processes (SIGKILL).

        The raylet starts worker processes in sessions of their own, so the node's process
        group alone would leave the actors running: every descendant is killed by its PID,
        found before any of them dies (orphans lose their parent link)."""
        node = self.worker_nodes[number]
        doomed = _descendants(node.pid)
        _kill_group(node, signal.SIGKILL)
        for process in doomed:
            _kill_if_same(process)
        node.wait(10)

    def _log(self, name: str) -> IO[bytes]:
        log = (self.temp_dir / f"{name}.log").open("wb")
        self._logs.append(log)
        return log

    def stop(self) -> None:
        nodes = [*self.worker_nodes, *([self.head] if self.head else [])]
        # Worker processes live in sessions of their own (see kill_worker): found now, ended
        # by PID below if they outlive their raylet.
        stragglers = [
            process for node in nodes if node.poll() is None for process in _descendants(node.pid)
        ]
        for node in nodes:
            _kill_group(node, signal.SIGTERM)
        for node in nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(10)
            _kill_group(node, signal.SIGKILL)
            node.wait(10)
        for process in stragglers:
            _kill_if_same(process)
        if self._holder is not None:
            _kill_group(self._holder, signal.SIGKILL)
            self._holder.wait(10)
        for log in self._logs:
            log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    # -- running things inside ------------------------------------------------------------

    def popen(
        self, argv: Sequence[str], env: dict[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        """``argv`` in the namespace, in a process group of its own (ended by its id)."""
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            ["nsenter", f"--net={self._netns()}", "--", *argv],
            start_new_session=True,
            env=os.environ | (env or {}),
            **kwargs,
        )

    def run(
        self, argv: Sequence[str], timeout_s: float = 60.0, check: bool = False, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # type: ignore[call-overload]
            ["nsenter", f"--net={self._netns()}", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            **kwargs,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv}: {done.stdout}{done.stderr}")
        return done  # type: ignore[no-any-return]

    def alive_nodes(self) -> int:
        probe = (
            f"import ray; ray.init(address='{ADDRESS}', logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        done = self.run([sys.executable, "-c", probe], timeout_s=60)
        lines = done.stdout.strip().splitlines()
        return int(lines[-1]) if done.returncode == 0 and lines else 0

    def _wait_for(self, nodes: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.alive_nodes() >= nodes:
                return
            time.sleep(1.0)
        logs = "".join(p.read_text(errors="replace")[-2000:] for p in self.temp_dir.glob("*.log"))
        raise RuntimeError(f"the Ray cluster did not reach {nodes} nodes: {logs}")

    def _netns_of_holder(self) -> str | None:
        assert self._holder is not None
        path = f"/proc/{self._holder.pid}/ns/net"
        try:
            return path if os.readlink(path) != os.readlink("/proc/self/ns/net") else None
        except OSError:
            return None

    def _netns(self) -> str:
        netns = self._netns_of_holder()
        if netns is None:
            raise RuntimeError("the namespace holder is gone")
        return netns


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None or sig is signal.SIGKILL:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def _descendants(root: int) -> list[tuple[int, str]]:
    """(PID, start time) of every process below ``root``: the start time tells a process
    from a later one that reuses its PID."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _kill_if_same(process: tuple[int, str]) -> None:
    pid, started = process
    fields = _stat_fields(pid)
    if fields and fields[19] == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command (which may hold spaces and parentheses): field 0 is
    the state, 1 the parent PID, 19 the start time."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
