# mypy: disallow-untyped-calls=False
"""Staged model rollouts to five devices, each running the real classifier process, with the
operator's command line as a user runs it (``python -m cloud_tools model rollout`` and
``fleet status``), Azurite for Blob Storage and the real SDKs throughout.

The five devices start once for the module (five classifier processes are the expensive
part); each test reads the state it starts from instead of assuming another test's outcome.
The models are the tiny colour models (tests/support/tiny_models.py): what is under test is
the rollout, not the model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from simulator.fleet import Fleet
from simulator.local.tool_env import blob_storage, tool_variables, write_connection_info
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    SDK_SOCKET_LEAK,
    fleet_settings,
    running_fleet,
    short_state_dir,
)
from tests.integration.fleet_support import base_manifest, devices
from tests.integration.fleet_support import deployment as described
from tests.integration.model_update_e2e_support import (
    START_TIMEOUT_S,
    classifier_command,
    require_tools,
)
from tests.support.cloud_tools_cli import run_cloud_tools
from tests.support.tiny_models import write_versioned_colour_model

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow, SDK_SOCKET_LEAK]

DEVICES = [f"edge-{i}" for i in range(1, 6)]
CLI_TIMEOUT_S = 300


@dataclass
class FiveDevices:
    fleet: Fleet
    env: dict[str, str]
    models: Path

    def reported(self, device_id: str) -> dict[str, Any]:
        return dict(self.fleet.state.twins.reported(device_id, "classifier"))

    def desired(self, device_id: str) -> tuple[dict[str, Any], int]:
        twins = self.fleet.state.twins
        return dict(twins.desired(device_id, "classifier")), twins.desired_version(
            device_id, "classifier"
        )

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await run_cloud_tools(self.env, *args, timeout_s=CLI_TIMEOUT_S)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def five(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FiveDevices]:
    models = tmp_path_factory.mktemp("models")
    v1 = write_versioned_colour_model(models / "v1.onnx", "1.0.0")
    state_dir = short_state_dir()
    settings = fleet_settings(
        state_dir, base_manifest(), devices(*[{"site": "lab"}] * len(DEVICES))
    )
    try:
        async with (
            running_fleet(settings, classifier_command(v1)) as fleet,
            blob_storage(fleet, 0) as server,
        ):
            if server is None:
                if require_tools():
                    pytest.fail("Azurite is not installed (scripts/bootstrap.sh installs it)")
                pytest.skip("Azurite is not installed: run scripts/bootstrap.sh (needs npm)")
            write_connection_info(fleet, server.endpoint)
            five = FiveDevices(fleet, tool_variables(state_dir), models)
            for device in DEVICES:
                await eventually(
                    lambda d=device: five.reported(d).get("state") == "running",  # type: ignore[misc]
                    START_TIMEOUT_S,
                    f"the classifier running on {device}",
                )
            yield five
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


async def test_a_staged_rollout_reaches_the_canary_then_every_device(five: FiveDevices) -> None:
    v2 = write_versioned_colour_model(five.models / "v2.onnx", "2.0.0", reversed_labels=True)
    rollout = await five.cli(
        "model", "rollout", "--name", "colour-2", "--target-condition", "tags.site='lab'",
        "--priority", "10", "--model", str(v2), "--canary-percent", "20", "--poll-s", "0.5",
    )  # fmt: skip
    lines = rollout.stdout.splitlines()
    assert rollout.returncode == 0, rollout.stdout + rollout.stderr
    assert "to 1 canary device(s) of 5: edge-1" in rollout.stdout
    assert "canary: 1/1 active" in lines
    assert "rollout: 5/5 active" in lines
    for device in DEVICES:
        model = five.reported(device)["model"]
        assert (model["version"], model["source"]) == ("2.0.0", "download")
    deployment = described(five.fleet, "colour-2")
    assert deployment["targetCondition"] == "tags.site='lab'"
    assert deployment["metrics"]["results"] == {"modelActive": 5, "modelFailed": 0}
    assert deployment["systemMetrics"]["results"]["appliedCount"] == 5


async def test_a_failing_canary_halts_the_rollout_and_leaves_the_rest_untouched(
    five: FiveDevices,
) -> None:
    v3 = write_versioned_colour_model(five.models / "v3.onnx", "3.0.0")
    upload = await five.cli("model", "upload", str(v3), "--json")
    assert upload.returncode == 0, upload.stderr
    url = json.loads(upload.stdout)["url"]
    before = {d: (five.desired(d), five.reported(d)["model"]) for d in DEVICES[1:]}
    rollout = await five.cli(
        "model", "rollout", "--name", "colour-3-typo", "--target-condition", "tags.site='lab'",
        "--priority", "20", "--url", url, "--sha256", "0" * 64, "--canary-percent", "20",
        "--poll-s", "0.5",
    )  # fmt: skip
    assert rollout.returncode == 1, rollout.stdout + rollout.stderr
    assert "edge-1: failed: sha256_mismatch" in rollout.stdout
    assert "halted: a canary failed. The other 4 device(s) were not touched" in rollout.stdout
    assert five.reported("edge-1")["modelUpdate"]["error"]["code"] == "sha256_mismatch"
    after = {d: (five.desired(d), five.reported(d)["model"]) for d in DEVICES[1:]}
    assert after == before
    deployment = described(five.fleet, "colour-3-typo")
    assert deployment["targetCondition"] == "(tags.site='lab') AND (deviceId IN ['edge-1'])"


async def test_fleet_status_shows_what_each_device_runs(five: FiveDevices) -> None:
    table = await five.cli("fleet", "status", "--target-condition", "tags.site='lab'")
    as_json = await five.cli("fleet", "status", "--json")
    assert table.returncode in (0, 1), table.stderr  # 1 when a device's last update failed
    rows = json.loads(as_json.stdout)["devices"]
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "DEVICE", "CONN", "MODULE", "UPDATE", "MODEL", "SHA256", "PROVIDER", "LAST", "ACTIVITY"
    ]  # fmt: skip
    assert [row["device_id"] for row in rows] == DEVICES
    for device, line, row in zip(DEVICES, lines[1:], rows, strict=False):
        model = five.reported(device)["model"]
        cells = line.split()
        assert cells[:3] == [device, "yes", "running"]
        assert f"{model['name']} {model['version']}" in line
        assert model["sha256"][:12] in cells
        assert row["model_sha256"] == model["sha256"] and row["provider"] == model["provider"]
        assert row["update_state"] == five.reported(device)["modelUpdate"]["state"]
        assert row["last_activity"] is not None
    assert lines[-1].startswith("5 device(s): ")
