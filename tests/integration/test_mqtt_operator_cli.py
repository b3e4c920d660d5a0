"""The operator's commands against a broker (``--mqtt``): ``model status``, ``invoke``,
``model push`` through the retained desired topic, and ``monitor`` on the outputs, as a user
runs them, against a classifier replica on Eclipse Mosquitto."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from cloud_tools.broker_service import BrokerService
from tests.integration.broker_support import Camera
from tests.integration.test_mqtt_broker_e2e import (
    broker,
    operator,
    start_classifiers,
    stop_leftover_modules,
)
from tests.support.cloud_tools_cli import run_cloud_tools
from tests.support.mosquitto import PREFIX, USERS, Mosquitto
from tests.support.tiny_models import write_versioned_colour_model

__all__ = ["broker", "operator", "stop_leftover_modules"]  # fixtures
pytestmark = pytest.mark.timeout(600)


def broker_env(broker: Mosquitto) -> dict[str, str]:
    return {
        "MQTT_HOST": broker.host,
        "MQTT_PORT": str(broker.port),
        "MQTT_CA_FILE": str(broker.ca_path),
        "MQTT_USERNAME": "operator",
        "MQTT_PASSWORD": USERS["operator"],
        "MQTT_TOPIC_PREFIX": PREFIX,
    }


async def test_the_operator_commands_work_against_a_broker(
    broker: Mosquitto, operator: BrokerService, tmp_path: Path
) -> None:
    [replica] = await start_classifiers(broker, operator, tmp_path, 1)
    env = broker_env(broker)
    target = ("--mqtt", "--device", "classifier-1", "--module", "classifier")

    status = await run_cloud_tools(env, "model", "status", *target)
    assert status.returncode == 0, status.stderr
    assert "module     classifier-1/classifier: running" in status.stdout

    called = await run_cloud_tools(env, "invoke", *target, "--method", "get_status")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["payload"]["model"]["name"] == "colour-test"

    model = write_versioned_colour_model(tmp_path / "v2.onnx", "2.0.0", reversed_labels=True)
    pushed = await run_cloud_tools(
        env,
        "model",
        "push",
        *target,
        "--url",
        model.as_uri(),
        "--sha256",
        hashlib.sha256(model.read_bytes()).hexdigest(),
        "--name",
        "colour",
        "--version",
        "2.0.0",
        "--poll-s",
        "0.5",
    )
    assert pushed.returncode == 0, f"{pushed.stdout}\n{pushed.stderr}\n{replica.log()}"
    assert "twin $version 1" in pushed.stdout

    watching = asyncio.create_task(
        run_cloud_tools(env, "monitor", "--mqtt", "--output", "predictions", "--count", "3")
    )
    await asyncio.sleep(3.0)  # the monitor subscribes before the frames go out
    camera = await Camera.open(broker)
    try:
        await camera.send(1, 3)
        monitored = await asyncio.wait_for(watching, 120)
    finally:
        await camera.hub.close()
    assert monitored.returncode == 0, monitored.stderr
    lines = [json.loads(line) for line in monitored.stdout.splitlines()]
    assert [line["systemProperties"]["correlationId"] for line in lines] == [
        "camera-1-1",
        "camera-1-2",
        "camera-1-3",
    ]
    assert {line["properties"]["label"] for line in lines} == {"blue"}  # the new model
    assert {line["deviceId"] for line in lines} == {"classifier-1"}
