"""What the broker refuses, the modules report clearly: bad credentials, an untrusted broker
certificate, publishing outside a module's ACL; and what the ACL keeps from a module: another
module's settings, another replica's method calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloud_tools.broker_service import BrokerAddress, BrokerService
from edge_module.errors import HubError, OutboundRejectedError
from edge_module.hub import OutboundMessage
from edge_module.mqtt_hub import MqttHub
from edge_module.mqtt_settings import MqttSettings
from simulator.mqtt.testing import eventually, throwaway_tls
from tests.integration.broker_support import start_module
from tests.integration.test_mqtt_broker_e2e import broker, stop_leftover_modules
from tests.support.mosquitto import PREFIX, USERS, Mosquitto
from tests.support.tiny_models import write_colour_model

__all__ = ["broker", "stop_leftover_modules"]  # fixtures
pytestmark = pytest.mark.timeout(300)


def hub(broker: Mosquitto, user: str, client_id: str, **extra: str) -> MqttHub:
    settings = MqttSettings.from_env(broker.module_env(user, client_id, **extra))
    return MqttHub(settings, asyncio.get_running_loop())


async def test_a_wrong_password_is_refused_with_the_brokers_reason(broker: Mosquitto) -> None:
    module = hub(broker, "classifier", "classifier-1", MQTT_PASSWORD="not-the-password")
    with pytest.raises(HubError, match=r"refused client 'classifier-1'.*(0x86|0x87)"):
        await module.connect()


async def test_a_broker_certificate_from_another_ca_is_refused(
    broker: Mosquitto, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(throwaway_tls(broker.host).ca_pem)
    module = hub(broker, "classifier", "classifier-1", MQTT_CA_FILE=str(other_ca))
    with pytest.raises(HubError, match=r"cannot reach the MQTT broker.*certificate verify failed"):
        await module.connect()


async def test_a_module_does_not_receive_another_modules_settings(broker: Mosquitto) -> None:
    """Mosquitto 2.0 grants the subscription and applies the ACL to each message it would
    deliver: the impostor sees nothing."""
    operator = await asyncio.to_thread(BrokerService, _address(broker, "operator"))
    await asyncio.to_thread(operator.update_desired, "framesource", {"source": {"fps": 5}})
    await asyncio.to_thread(operator.close)
    # The classifier's credentials, claiming to be the frame source.
    impostor = hub(broker, "classifier", "classifier-1", MQTT_MODULE="framesource")
    await impostor.connect()
    try:
        assert await impostor.get_desired_properties() == {"$version": 0}
    finally:
        await impostor.close()
    genuine = hub(broker, "framesource", "camera-1")
    await genuine.connect()
    try:
        assert (await genuine.get_desired_properties())["source"] == {"fps": 5}
    finally:
        await genuine.close()


async def test_a_replica_does_not_receive_another_replicas_method_calls(
    broker: Mosquitto,
) -> None:
    spy = await asyncio.to_thread(
        lambda: BrokerService(_address(broker, "classifier"), client_id="classifier-1")
    )
    operator = await asyncio.to_thread(BrokerService, _address(broker, "operator"))
    seen: list[str] = []
    try:
        for replica in ("classifier-2", "classifier-1"):
            topic = f"{PREFIX}/modules/classifier/methods/{replica}/get_status"
            await asyncio.to_thread(spy.subscribe, topic, lambda m: seen.append(m.topic))
            await asyncio.to_thread(operator.publish, topic, b"{}")
        await eventually(lambda: seen, 5, "the replica's own call")
        await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(spy.close)
        await asyncio.to_thread(operator.close)
    assert seen == [f"{PREFIX}/modules/classifier/methods/classifier-1/get_status"]


def _address(broker: Mosquitto, user: str) -> BrokerAddress:
    return BrokerAddress(broker.host, broker.port, str(broker.ca_path), user, USERS[user], PREFIX)


async def test_publishing_outside_the_acl_is_refused_as_not_retryable(broker: Mosquitto) -> None:
    camera = hub(broker, "framesource", "camera-1")
    await camera.connect()
    try:
        with pytest.raises(OutboundRejectedError, match=r"predictions.*Not authorized \(0x87\)"):
            await camera.send("predictions", OutboundMessage(b"{}"))
    finally:
        await camera.close()


async def test_the_classifier_with_bad_credentials_exits_saying_why(
    broker: Mosquitto, tmp_path: Path
) -> None:
    process = await start_module(
        "classifier",
        broker,
        "classifier-1",
        tmp_path,
        MQTT_PASSWORD="wrong",
        MODEL_PATH=str(write_colour_model(tmp_path / "colour.onnx")),
        MODEL_CACHE_DIR=str(tmp_path / "cache"),
    )
    status = await asyncio.wait_for(process.process.wait(), 120)
    assert status == 1
    assert "the MQTT broker refused client 'classifier-1' (user classifier)" in process.log()
