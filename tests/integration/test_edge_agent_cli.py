# mypy: disallow-untyped-calls=False
"""``python -m cloud_tools logs`` and ``restart`` as an operator runs them: separate processes
on the real azure-iot-hub SDK, calling edgeAgent's methods on the simulated device."""

from __future__ import annotations

import json
import subprocess

import pytest

from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, SDK_SOCKET_LEAK
from tests.integration.edge_agent_methods_support import Device, talking_device
from tests.support.cloud_tools_cli import run_cloud_tools

pytestmark = [pytest.mark.slow, SDK_SOCKET_LEAK]


async def cli(device: Device, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "IOTHUB_CONNECTION_STRING": device.sim.hub_connection_string(),
        "REQUESTS_CA_BUNDLE": str(device.sim.ca_path),
    }
    return await run_cloud_tools(env, *args, "--device", DEVICE)


async def test_logs_prints_the_module_lines_filtered_by_tail_level_since_and_grep(monkeypatch):
    async with talking_device(monkeypatch) as device:
        ticks = await cli(device, "logs", "--module", "talker", "--tail", "3", "--level", "7")
        errors = await cli(device, "logs", "--module", "talker", "--level", "error")
        disk = await cli(device, "logs", "--module", "talker", "--since", "1h", "--grep", "disk")
        records = await cli(device, "logs", "--module", "talker", "--json", "--grep", "started")
    assert ticks.returncode == 0, ticks.stderr
    lines = ticks.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("<7> ") and "tick" in line for line in lines)
    assert errors.returncode == 0, errors.stderr
    assert errors.stdout.splitlines()[0].endswith("[ERR] talker - camera failed")
    assert all(line.startswith("<3> ") for line in errors.stdout.splitlines())
    assert [line.split("] ", 1)[1] for line in disk.stdout.splitlines()] == [
        "talker - disk almost full"
    ]
    [record] = json.loads(records.stdout)
    assert (record["id"], record["loglevel"]) == ("talker", 6)


async def test_logs_says_why_when_the_module_or_a_filter_is_wrong(monkeypatch):
    async with talking_device(monkeypatch) as device:
        unknown = await cli(device, "logs", "--module", "talk")  # ids are exact here
        bad_since = await cli(device, "logs", "--module", "talker", "--since", "soon")
        bad_level = await cli(device, "logs", "--module", "talker", "--level", "loud")
    assert unknown.returncode == 1 and "runs no module 'talk'" in unknown.stderr
    assert bad_since.returncode == 1 and "answered 500: invalid parameter: since" in (
        bad_since.stderr
    )
    assert bad_level.returncode == 2 and "'loud' is not 0-7" in bad_level.stderr


async def test_restart_restarts_the_module_and_returns_once_it_runs_again(monkeypatch):
    async with talking_device(monkeypatch) as device:
        await eventually(lambda: "pid" in device.talker_report(), 10, "the talker's pid reported")
        pid = device.talker_report()["pid"]
        done = await cli(device, "restart", "--module", "talker")
        await eventually(
            lambda: device.talker_report().get("pid") not in (None, pid), 10, "a new pid reported"
        )
        report = device.talker_report()
        unknown = await cli(device, "restart", "--module", "nosuch")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"restarted talker on {DEVICE}"
    assert report["runtimeStatus"] == "running"
    assert unknown.returncode == 1
    assert "answered 500: Module nosuch not found in the current environment" in unknown.stderr
