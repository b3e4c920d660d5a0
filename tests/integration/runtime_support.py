"""Shared pieces for the local runtime tests: tiny child scripts, manifests, polling."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.deployment.manifest import DeploymentManifest, parse_manifest
from simulator.device.runtime import BackoffPolicy, EdgeRuntimeSettings, ModuleCommand

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_MANIFEST = REPO_ROOT / "tests" / "data" / "deployment.classifier.amd64.json"

SETTINGS = EdgeRuntimeSettings(
    iothub_hostname="testhub.azure-devices.net",
    device_id="edge-dev-1",
    gateway_hostname="127.0.0.2",
    workload_uri="http://127.0.0.1:15581/",
    runtime_log_level="debug",
)
# Short constants so restart tests take a second or two; the doubling is what is measured.
FAST_BACKOFF = BackoffPolicy(unit_s=0.2, max_s=0.8, stable_after_s=30.0, max_restarts=None)

# Writes the environment as JSON (atomically, so a poller never reads half a file), then idles.
ENV_DUMP = """
import json, os, sys, time
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    json.dump(dict(os.environ), f)
os.replace(tmp, sys.argv[1])
time.sleep(60)
"""
# Appends "<monotonic> <pid>" to a file, then exits with the given code.
START_THEN_EXIT = """
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"{time.monotonic()} {os.getpid()}\\n")
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
sys.exit(int(sys.argv[2]))
"""
IDLE = "import time; time.sleep(60)"
IGNORE_SIGTERM = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(60)
"""
# Starts a grandchild, records its pid, then exits with argv[2] or (if "stay") idles.
WITH_GRANDCHILD = """
import pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"])
pathlib.Path(sys.argv[1]).write_text(str(child.pid))
if sys.argv[2] == "stay":
    time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


def py(script: str, *args: str | Path | float) -> ModuleCommand:
    # -I -S: isolated and no site import, so each child starts in a few milliseconds.
    return ModuleCommand(
        [sys.executable, "-I", "-S", "-c", textwrap.dedent(script)] + [str(a) for a in args]
    )


def module(
    *,
    restart: str = "always",
    status: str = "running",
    order: int | None = None,
    env: dict[str, Any] | None = None,
    image: str = "local/test:1.0",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "1.0",
        "type": "docker",
        "status": status,
        "restartPolicy": restart,
        "settings": {"image": image, "createOptions": "{}"},
    }
    if order is not None:
        body["startupOrder"] = order
    if env:
        body["env"] = {k: {"value": v} for k, v in env.items()}
    return body


def manifest(modules: dict[str, dict[str, Any]]) -> DeploymentManifest:
    return parse_manifest(manifest_content(modules))


def manifest_content(modules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A whole deployment (``modulesContent``) running ``modules`` beside the system modules."""
    system = {"type": "docker", "settings": {"image": "mcr.microsoft.com/azureiotedge-agent:1.5"}}
    hub = {
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "settings": {"image": "mcr.microsoft.com/azureiotedge-hub:1.5"},
    }
    return {
        "modulesContent": {
            "$edgeAgent": {
                "properties.desired": {
                    "schemaVersion": "1.1",
                    "runtime": {"type": "docker", "settings": {}},
                    "systemModules": {"edgeAgent": system, "edgeHub": hub},
                    "modules": modules,
                }
            },
            "$edgeHub": {"properties.desired": {"schemaVersion": "1.2", "routes": {}}},
        }
    }


async def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def start_times(path: Path) -> list[float]:
    if not path.exists():
        return []
    return [float(line.split()[0]) for line in path.read_text().splitlines() if line]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (nobody may be reaping it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
