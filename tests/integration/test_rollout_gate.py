# mypy: disallow-untyped-calls=False
"""A gated canary on two devices, each running the real classifier and the synthetic camera:
the operator's ``model rollout --gate`` judges the canary on the signals it reports for the
new model. A gate the model cannot meet halts the rollout and rolls the canary back; one it
meets lets the rollout reach every device."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cloud_tools.model_stamp import stamp_model
from simulator.device.device import DeviceSettings
from simulator.device.runtime import ModuleCommand
from simulator.fleet import Fleet
from simulator.local.modules import repo_module_commands
from simulator.local.tool_env import blob_storage, tool_variables, write_connection_info
from simulator.mqtt.testing import eventually
from tests.conftest import DEFAULT_MODEL
from tests.integration.e2e_support import (
    SDK_SOCKET_LEAK,
    fleet_settings,
    running_fleet,
    short_state_dir,
    template_manifest,
)
from tests.integration.fleet_support import devices
from tests.integration.model_update_e2e_support import START_TIMEOUT_S, require_tools
from tests.support.cloud_tools_cli import run_cloud_tools

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow, SDK_SOCKET_LEAK]

DEVICES = ["edge-1", "edge-2"]
GATE_FLAGS = ["--canary-percent", "50", "--canary-window-s", "2", "--gate-min-frames", "20"]


@dataclass
class TwoCameras:
    fleet: Fleet
    env: dict[str, str]
    models: Path

    def reported(self, device_id: str) -> dict[str, Any]:
        return dict(self.fleet.state.twins.reported(device_id, "classifier"))

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await run_cloud_tools(self.env, *args, timeout_s=300)


def _commands(device: DeviceSettings) -> dict[str, ModuleCommand]:
    made = repo_module_commands(device)
    classifier = made["classifier"]
    quick = {"QUALITY_REPORT_S": "0.5", "MODEL_PROBATION_FRAMES": "10", "MODEL_MIN_FREE_BYTES": "0"}
    made["classifier"] = replace(classifier, env={**classifier.env, **quick})
    return made


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def two(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TwoCameras]:
    models = tmp_path_factory.mktemp("models")
    state_dir = short_state_dir()
    settings = fleet_settings(state_dir, template_manifest(), devices(*[{"site": "lab"}] * 2))
    try:
        async with running_fleet(settings, _commands) as fleet, blob_storage(fleet, 0) as server:
            if server is None:
                if require_tools():
                    pytest.fail("Azurite is not installed (scripts/bootstrap.sh installs it)")
                pytest.skip("Azurite is not installed: run scripts/bootstrap.sh (needs npm)")
            write_connection_info(fleet, server.endpoint)
            two = TwoCameras(fleet, tool_variables(state_dir), models)
            for device in DEVICES:
                await eventually(
                    lambda d=device: (two.reported(d).get("signals") or {}).get("models"),  # type: ignore[misc]
                    START_TIMEOUT_S,
                    f"camera frames scored on {device}",
                )
            yield two
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


async def test_a_gate_the_new_model_fails_halts_the_rollout_and_rolls_the_canary_back(
    two: TwoCameras,
) -> None:
    v2 = two.models / "v2.onnx"
    stamp_model(DEFAULT_MODEL, v2, version="1.1.0")
    rollout = await two.cli(
        "model", "rollout", "--name", "gated-impossible", "--target-condition",
        "tags.site='lab'", "--priority", "10", "--model", str(v2), "--poll-s", "0.5",
        "--gate", "mean_confidence>=0.9999,error_rate<=0", *GATE_FLAGS,
    )  # fmt: skip
    out = rollout.stdout
    assert rollout.returncode == 1, out + rollout.stderr
    assert "canary: 1/1 active" in out
    assert (
        "gate failed on edge-1: mean_confidence=" in out and "fails mean_confidence>=0.9999" in out
    )
    assert "control edge-2: seed-cnn-synth10 1.0.0" in out
    assert "edge-1: rolled back" in out
    assert "halted: a canary failed. The other 1 device(s) were not touched" in out
    canary = two.reported("edge-1")
    assert canary["model"]["version"] == "1.0.0"
    assert canary["modelUpdate"]["state"] == "rolled_back"
    assert two.reported("edge-2")["model"]["version"] == "1.0.0"


async def test_a_gate_the_new_model_meets_lets_the_rollout_reach_every_device(
    two: TwoCameras,
) -> None:
    v3 = two.models / "v3.onnx"
    stamp_model(DEFAULT_MODEL, v3, version="1.2.0")
    rollout = await two.cli(
        "model", "rollout", "--name", "gated-fine", "--target-condition", "tags.site='lab'",
        "--priority", "20", "--model", str(v3), "--poll-s", "0.5",
        "--gate", "mean_confidence>=0.5,error_rate<=0.01", *GATE_FLAGS,
    )  # fmt: skip
    assert rollout.returncode == 0, rollout.stdout + rollout.stderr
    assert "gate passed" in rollout.stdout and "rollout: 2/2 active" in rollout.stdout
    for device in DEVICES:
        assert two.reported(device)["model"]["version"] == "1.2.0"
