"""Faults on Eclipse Mosquitto: a replica killed mid-stream, the broker restarted, a model
update through the retained desired topic. Each frame the camera had acknowledged must end
with an outcome; the counts of what the broker held and redelivered are printed (docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from cloud_tools.broker_service import BrokerService
from simulator.mqtt.testing import eventually
from tests.integration.broker_support import (
    Camera,
    Outcomes,
    operator_address,
    start_module,
    watch_outcomes,
)
from tests.integration.test_mqtt_broker_e2e import (
    broker,
    operator,
    start_classifiers,
    stop_leftover_modules,
)
from tests.support.mosquitto import Mosquitto
from tests.support.tiny_models import write_versioned_colour_model

__all__ = ["broker", "operator", "stop_leftover_modules"]  # fixtures
pytestmark = pytest.mark.timeout(600)


async def settled(outcomes: Outcomes, quiet_s: float = 2.0) -> None:
    """Until no outcome has arrived for ``quiet_s``."""
    last = -1
    while (count := sum(len(v) for v in list(outcomes.by_frame.values()))) != last:
        last = count
        await asyncio.sleep(quiet_s)


async def test_a_replica_killed_mid_stream_loses_no_frame_it_took(
    broker: Mosquitto, operator: BrokerService, tmp_path: Path
) -> None:
    replicas = await start_classifiers(broker, operator, tmp_path, 2)
    outcomes = await watch_outcomes(operator)
    camera = await Camera.open(broker)
    try:
        sending = asyncio.create_task(camera.send(1, 2000, window=32, pause_s=0.02))
        await eventually(lambda: len(outcomes.by_frame) >= 400, 120, "400 outcomes")
        replicas[1].kill()
        await replicas[1].process.wait()
        answered_at_kill = len(outcomes.by_frame)
        frame_ids = await sending
        assert camera.acknowledged == frame_ids
        await settled(outcomes)
        held = [f for f in frame_ids if not outcomes.by_frame.get(f)]
        # The replica comes back under its client id, as a restarted pod does: its session
        # resumes and the broker hands over what it held for it.
        replicas[1] = await start_module(
            "classifier",
            broker,
            "classifier-2",
            tmp_path,
            MODEL_PATH=str(tmp_path / "colour.onnx"),
            MODEL_CACHE_DIR=str(tmp_path / "cache-2"),
            # Smaller than what the broker holds for it: Mosquitto sends a resumed session's
            # whole backlog at once, and the hub must take it in rounds without losing any.
            INTAKE_CAPACITY="16",
            MQTT_INTAKE_BACKLOG="200",
        )
        with replicas[1].log_on_failure():
            await eventually(lambda: outcomes.answered(frame_ids) == 2000, 300, "2000 outcomes")
            await settled(outcomes)
    finally:
        await camera.hub.close()
        for replica in replicas:
            await replica.stop()
    twice = [f for f in frame_ids if len(outcomes.by_frame[f]) > 1]
    after_restart = {
        f for f in held if any(r == "classifier-2" for _, r, _ in outcomes.by_frame[f])
    }
    print(
        f"killed after {answered_at_kill} outcomes; held by the broker for the dead replica: "
        f"{len(held)}, all redelivered to it after its restart: {after_restart == set(held)}; "
        f"answered twice: {len(twice)}; per replica: {outcomes.per_replica()}"
    )
    assert held, "the broker held no frame for the dead replica: the kill came too late"
    assert after_restart == set(held)
    assert outcomes.answered(frame_ids) == 2000
    # At least once: only frames whose outcome was out but not yet acknowledged come twice.
    assert len(twice) <= 2 * 32


async def test_a_broker_restart_with_persistence_loses_no_acknowledged_frame(
    broker: Mosquitto, tmp_path: Path
) -> None:
    # The operator's subscription is a persistent session too, or it would miss outcomes
    # published while it reconnects.
    operator = await asyncio.to_thread(
        lambda: BrokerService(
            operator_address(broker), client_id="operator-watch", session_expiry_s=600
        )
    )
    try:
        [classifier] = await start_classifiers(broker, operator, tmp_path, 1)
        outcomes = await watch_outcomes(operator)
        camera = await Camera.open(broker)
        try:
            first = await camera.send(1, 300, window=32)
            await asyncio.to_thread(broker.restart)
            second = await camera.send(301, 300, window=32)
            acknowledged = [f for f in first + second if f in set(camera.acknowledged)]
            with classifier.log_on_failure():
                try:
                    await eventually(
                        lambda: outcomes.answered(acknowledged) == len(acknowledged),
                        120,
                        "outcomes",
                    )
                finally:
                    missing = [f for f in acknowledged if not outcomes.by_frame.get(f)]
                    print(f"{len(missing)} unanswered: {missing[:3]} ... {missing[-3:]}")
        finally:
            await camera.hub.close()
            await classifier.stop()
        print(
            f"broker restarted after 300 frames: {len(camera.unrouted)} of 600 dropped by the "
            "broker for want of a subscriber (PUBACK 0x10), "
            f"{len(acknowledged)} of 600 acknowledged, "
            f"{outcomes.answered(acknowledged)} answered, "
            f"{sum(1 for f in acknowledged if len(outcomes.by_frame[f]) > 1)} answered twice"
        )
    finally:
        await asyncio.to_thread(operator.close)
    assert len(acknowledged) + len(camera.unrouted) == 600
    assert outcomes.answered(acknowledged) == len(acknowledged)


async def test_a_model_update_through_the_retained_desired_topic_reaches_every_replica(
    broker: Mosquitto, operator: BrokerService, tmp_path: Path
) -> None:
    replicas = await start_classifiers(broker, operator, tmp_path, 2)
    outcomes = await watch_outcomes(operator)
    camera = await Camera.open(broker)
    model = write_versioned_colour_model(tmp_path / "v2.onnx", "2.0.0", reversed_labels=True)
    patch = {
        "schemaVersion": "1.0",
        "model": {
            "name": "colour",
            "version": "2.0.0",
            "url": model.as_uri(),
            "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
            "size": model.stat().st_size,
            "signature": None,
        },
    }
    try:
        before = await camera.send(1, 100)
        doc = await asyncio.to_thread(operator.update_desired, "classifier", patch)

        async def active_everywhere() -> bool:
            reported = await asyncio.to_thread(operator.reported, "classifier")
            return all(
                (reported.get(f"classifier-{n}") or {}).get("model", {}).get("version") == "2.0.0"
                for n in (1, 2)
            )

        deadline = asyncio.get_running_loop().time() + 180
        while not await active_everywhere():
            assert asyncio.get_running_loop().time() < deadline, replicas[0].log()
            await asyncio.sleep(0.5)
        after = await camera.send(101, 100)
        await eventually(lambda: outcomes.answered(before + after) == 200, 120, "200 outcomes")
    finally:
        await camera.hub.close()
        for replica in replicas:
            await replica.stop()
    assert doc["$version"] == 1
    labels_after = {
        dict(m.properties.UserProperty).get("label")
        for f in after
        for _, _, m in outcomes.by_frame[f]
    }
    assert labels_after == {"blue"}  # the reversed model names red frames "blue"
    assert all(len(outcomes.by_frame[f]) == 1 for f in before + after)
