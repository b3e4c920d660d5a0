"""The deployment as a user makes it, run on the simulator.

``python -m cloud_tools genconfig`` writes the base deployment and the demo camera layer for
amd64 into ``config/``; the simulator runs the two composed, as IoT Hub hands a device its
base plus matching layers, with the repository's real ``framesource`` and ``classifier``
processes in edgeAgent's role. Frames flow camera -> edgeHub -> classifier -> $upstream, the
classifier's Prometheus endpoint is scraped over HTTP and parsed with prometheus-client's own
parser, and its log lines carry the syslog severities IoT Edge's log retrieval filters on.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud_tools.__main__ import main as cloud_tools
from cloud_tools.genconfig import compose
from simulator.device.device import DeviceSettings
from simulator.device.runtime import ModuleCommand
from simulator.errors import SimulatorError
from simulator.fleet import Fleet
from simulator.local.modules import repo_module_commands
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    running_simulator,
    wait_upstream,
)
from tests.support.solution import make_solution

pytestmark = SDK_SOCKET_LEAK

START_TIMEOUT_S = 120.0  # two module processes importing and warming up on 2 busy cores
SCRAPE_TIMEOUT_S = 10.0
SETTINGS = ("CONTAINER_REGISTRY_SERVER", "DOTENV_FILE", "CONFIG_OUTPUT_DIR", "CONTAINER_TAG")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The device's manifest from the files genconfig wrote, base plus camera layer."""
    solution = make_solution(tmp_path / "solution")
    monkeypatch.chdir(solution)
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert cloud_tools(["genconfig", "-f", "deployment.template.json", "-P", "amd64"]) == 0
    assert cloud_tools(["genconfig", "-f", "layered.camera.template.json", "-P", "amd64"]) == 0
    base = json.loads((solution / "config" / "deployment.amd64.json").read_text())
    layer = json.loads((solution / "config" / "layered.camera.amd64.json").read_text())
    return compose(base, [layer])


def scrape(port: int) -> dict[str, list[Any]]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def scored(families: dict[str, list[Any]]) -> float:
    [sample] = families["classifier_frames_scored"]
    return float(sample.value)


def module_log(sim: Fleet, module: str) -> str:
    path = sim.device(DEVICE).runtime.log_path(module)
    return path.read_text(errors="replace") if path.exists() else ""


async def test_the_generated_amd64_manifest_classifies_camera_frames_on_the_simulator(
    generated: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()

    def commands(device: DeviceSettings) -> dict[str, ModuleCommand]:
        made = repo_module_commands(device)
        classifier = made["classifier"]
        # No model is pushed here: no download CA is needed.
        env = {k: v for k, v in classifier.env.items() if k != "MODEL_DOWNLOAD_CA_FILE"}
        made["classifier"] = replace(
            classifier, env={**env, "METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"}
        )
        return made

    async with running_simulator(generated, commands) as sim:
        try:
            await wait_upstream(
                sim, 3, module_id="classifier", output_name="predictions", timeout_s=START_TIMEOUT_S
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{module_log(sim, 'classifier')[-3000:]}") from None
        first = await asyncio.to_thread(scrape, port)
        seen = len(await wait_upstream(sim, 1, module_id="classifier", output_name="predictions"))
        await wait_upstream(sim, seen + 5, module_id="classifier", output_name="predictions")
        second = await asyncio.to_thread(scrape, port)
        log = module_log(sim, "classifier")
    assert 0 < scored(first) < scored(second)
    [info] = second["classifier_model_info"]
    assert info.labels["provider"] == "CPUExecutionProvider"
    assert info.labels["model_name"] and info.labels["model_sha256"]
    assert (info.labels["iothub"], info.labels["edge_device"], info.labels["module_name"]) == (
        sim.hub.host_name,
        DEVICE,
        "classifier",
    )
    assert re.search(
        r"^<6> \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+00:00 \[INF\] .*scoring", log, re.M
    )


async def test_a_manifest_with_an_unexpanded_image_is_refused_as_edge_agent_refuses_it(
    generated: dict[str, Any],
) -> None:
    # What a manifest generated without modules/classifier/module.json holds.
    modules = generated["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    modules["classifier"]["settings"]["image"] = "${MODULES.classifier}"
    async with running_simulator(None) as sim:
        with pytest.raises(SimulatorError, match=r"'\$\{MODULES\.classifier\}' is an unexpanded"):
            await sim.deploy(DEVICE, generated)
        assert not sim.device(DEVICE).runtime.module_reports()
