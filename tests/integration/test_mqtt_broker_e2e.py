"""The modules on Eclipse Mosquitto (docs/mqtt.md): ``python -m framesource`` and
``python -m classifier`` with ``HUB=mqtt``, over TLS, as users the broker's ACLs confine;
outcomes read by the operator's ``BrokerService``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_tools.broker_service import BrokerService
from edge_module.claim_check import CLAIM_CHECK_CONTENT_TYPE
from edge_module.mqtt_topics import output_filter
from simulator.mqtt.testing import eventually
from tests.integration.broker_support import (
    STARTED,
    Camera,
    operator_address,
    start_module,
    wait_running,
    watch_outcomes,
)
from tests.support import mosquitto
from tests.support.module_process import ModuleProcess
from tests.support.mosquitto import PREFIX, Mosquitto
from tests.support.tiny_models import write_colour_model
from tests.support.tools import require

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
async def stop_leftover_modules() -> AsyncIterator[None]:
    yield
    while STARTED:
        await STARTED.pop().stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require(mosquitto.missing())
    broker = Mosquitto.start(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
async def operator(broker: Mosquitto) -> AsyncIterator[BrokerService]:
    service = await asyncio.to_thread(BrokerService, operator_address(broker))
    yield service
    await asyncio.to_thread(service.close)


async def start_classifiers(
    broker: Mosquitto, operator: BrokerService, work: Path, count: int
) -> list[ModuleProcess]:
    model = write_colour_model(work / "colour.onnx")
    replicas = [
        await start_module(
            "classifier",
            broker,
            f"classifier-{n}",
            work,
            MODEL_PATH=str(model),
            MODEL_CACHE_DIR=str(work / f"cache-{n}"),
        )
        for n in range(1, count + 1)
    ]
    await wait_running(operator, [(p, f"classifier-{n}") for n, p in enumerate(replicas, 1)])
    return replicas


async def test_frames_from_the_frame_source_reach_predictions_with_v5_properties(
    broker: Mosquitto, operator: BrokerService, tmp_path: Path
) -> None:
    [classifier] = await start_classifiers(broker, operator, tmp_path, 1)
    outcomes = await watch_outcomes(operator)
    source = await start_module(
        "framesource",
        broker,
        "camera-a",
        tmp_path,
        SOURCE_URL="synthetic:",
        SOURCE_ID="camera-a",
        FPS="20",
        FRAME_COUNT="20",
        CLAIM_CHECK_DIR=str(tmp_path / "claims"),
    )
    try:
        with classifier.log_on_failure(), source.log_on_failure():
            frame_ids = [f"camera-a-{n}" for n in range(1, 21)]
            await eventually(lambda: outcomes.answered(frame_ids) == 20, 120, "20 outcomes")
    finally:
        await source.stop()
        await classifier.stop()
    for frame_id in frame_ids:
        [(output, replica, message)] = outcomes.by_frame[frame_id]
        assert (output, replica) == ("predictions", "classifier-1")
        assert message.qos == 1
        assert message.properties.ContentType == "application/json"
        user = dict(message.properties.UserProperty)
        assert user["schema"] == "edge-classifier/prediction/1"
        assert {"label", "confidence", "model"} <= set(user)
        body = json.loads(message.payload)
        assert body["frame"]["id"] == frame_id
        assert body["frame"]["source"] == "camera-a"


async def test_frames_too_large_for_a_message_travel_as_claim_checks_unchanged(
    broker: Mosquitto, operator: BrokerService, tmp_path: Path
) -> None:
    claims = str(tmp_path / "claims")
    model = write_colour_model(tmp_path / "colour.onnx")
    classifier = await start_module(
        "classifier",
        broker,
        "classifier-1",
        tmp_path,
        MODEL_PATH=str(model),
        MODEL_CACHE_DIR=str(tmp_path / "cache"),
        CLAIM_CHECK_DIR=claims,
    )
    await wait_running(operator, [(classifier, "classifier-1")])
    outcomes = await watch_outcomes(operator)
    frames: list[Any] = []
    await asyncio.to_thread(operator.subscribe, output_filter(PREFIX, "frames"), frames.append)
    source = await start_module(
        "framesource",
        broker,
        "camera-b",
        tmp_path,
        SOURCE_URL="synthetic:",
        SOURCE_ID="camera-b",
        FPS="20",
        FRAME_COUNT="10",
        CLAIM_CHECK_DIR=claims,
        CLAIM_CHECK_ABOVE_BYTES="1024",  # every frame is larger: each one a claim check
    )
    frame_ids = [f"camera-b-{n}" for n in range(1, 11)]
    with classifier.log_on_failure(), source.log_on_failure():
        await eventually(lambda: outcomes.answered(frame_ids) == 10, 120, "10 outcomes")
    assert {m.properties.ContentType for m in frames} == {CLAIM_CHECK_CONTENT_TYPE}
    assert all(outcomes.by_frame[f][0][0] == "predictions" for f in frame_ids)


async def test_three_replicas_split_3000_frames_with_one_outcome_per_frame(
    broker: Mosquitto, operator: BrokerService, tmp_path: Path
) -> None:
    replicas = await start_classifiers(broker, operator, tmp_path, 3)
    outcomes = await watch_outcomes(operator)
    camera = await Camera.open(broker)
    try:
        frame_ids = await camera.send(1, 3000)
        assert camera.acknowledged == frame_ids
        await eventually(lambda: outcomes.answered(frame_ids) == 3000, 300, "3000 outcomes")
        await asyncio.sleep(1.0)  # a duplicate would arrive within this
    finally:
        await camera.hub.close()
        for replica in replicas:
            await replica.stop()
    assert all(len(outcomes.by_frame[f]) == 1 for f in frame_ids)
    shares = outcomes.per_replica()
    print(f"frames per replica: {shares}")
    assert sorted(shares) == ["classifier-1", "classifier-2", "classifier-3"]
    assert sum(shares.values()) == 3000
    assert min(shares.values()) > 300  # each takes a real share of the stream
