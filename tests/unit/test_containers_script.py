"""``scripts/containers.sh`` stops only what it started: `down` acts on the marker the same
checkout's `up` wrote for the same engine folder, and only on a process that is still that
process (same kernel start time, a command line naming the folder). No engine is started
here: the script runs from a copy in a temporary checkout, against a temporary folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TIMEOUT_S = 60


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "containers.sh", root / "scripts")
    shutil.copytree(REPO / "scripts" / "containers", root / "scripts" / "containers")
    return root


def run(checkout: Path, engine_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checkout / "scripts" / "containers.sh"), *args],
        env={**os.environ, "EDGE_CONTAINERS_DIR": str(engine_dir)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def marker(checkout: Path, engine_dir: Path) -> Path:
    digest = hashlib.sha256(str(engine_dir).encode()).hexdigest()[:12]
    return checkout / ".run" / "containers" / f"started-{digest}"


def start_time(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(") ", 1)[1].split()[19]


def test_env_names_the_engine_socket_in_its_folder(checkout, tmp_path):
    done = run(checkout, tmp_path / "engine", "env")
    assert done.stdout == f"export DOCKER_HOST=unix://{tmp_path / 'engine'}/docker.sock\n"


def test_status_says_the_engine_is_not_running(checkout, tmp_path):
    done = run(checkout, tmp_path / "engine", "status")
    assert done.returncode == 3 and "not running" in done.stdout


def test_down_without_a_marker_stops_nothing(checkout, tmp_path):
    done = run(checkout, tmp_path / "engine", "down")
    assert done.returncode == 0 and "started no engine" in done.stderr


def test_down_leaves_a_process_that_is_not_the_engine_it_recorded(checkout, tmp_path):
    engine_dir = tmp_path / "engine"
    # A live process under a recorded PID, but not a daemon of this folder (as after a
    # restart that reused the PID): its command line does not name the folder.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        path = marker(checkout, engine_dir)
        path.parent.mkdir(parents=True)
        path.write_text(f"dockerd {bystander.pid} {start_time(bystander.pid)}\n")
        done = run(checkout, engine_dir, "down")
        assert done.returncode == 0 and "already ended" in done.stderr
        assert bystander.poll() is None
        assert not path.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_down_stops_the_process_it_recorded(checkout, tmp_path):
    engine_dir = tmp_path / "engine"
    engine_dir.mkdir()
    # Stands in for the daemon: a process whose command line names the engine folder.
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"{engine_dir}/docker.sock"]
    )
    try:
        path = marker(checkout, engine_dir)
        path.parent.mkdir(parents=True)
        path.write_text(f"dockerd {daemon.pid} {start_time(daemon.pid)}\n")
        done = run(checkout, engine_dir, "down")
        assert done.returncode == 0 and f"stopped dockerd (pid {daemon.pid})" in done.stderr
        assert daemon.wait(timeout=TIMEOUT_S) is not None
    finally:
        daemon.kill()
        daemon.wait()
