"""The MQTT hub's pure parts: topic names and parsing, when frames are acknowledged, the
desired document's versions, and the settings (docs/mqtt.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_module.errors import SettingsError
from edge_module.mqtt_acks import Acknowledgements
from edge_module.mqtt_client import connect_properties
from edge_module.mqtt_requests import DesiredDocument
from edge_module.mqtt_settings import MqttSettings, hub_kind
from edge_module.mqtt_topics import DesiredSettings, MethodRequest, Streamed, Topics

TOPICS = Topics("site/a", "classifier", "classifier-1", "classifier")


def test_outputs_go_to_a_topic_per_client_and_inputs_come_through_a_shared_subscription() -> None:
    assert TOPICS.output("predictions") == "site/a/streams/predictions/classifier-1"
    assert TOPICS.input_filter("frames") == "$share/classifier/site/a/streams/frames/+"


def test_topics_are_classified_by_what_they_carry() -> None:
    assert TOPICS.classify("site/a/streams/frames/cam-1") == Streamed("frames", "cam-1")
    assert TOPICS.classify("site/a/modules/classifier/desired") == DesiredSettings()
    assert TOPICS.classify("site/a/modules/classifier/methods/classifier-1/get_status") == (
        MethodRequest("get_status")
    )
    assert TOPICS.classify("site/a/modules/classifier/methods/any/classify") == (
        MethodRequest("classify")
    )


def test_another_replicas_method_calls_and_other_modules_topics_are_not_ours() -> None:
    assert TOPICS.classify("site/a/modules/classifier/methods/classifier-2/get_status") is None
    assert TOPICS.classify("site/a/modules/framesource/desired") is None
    assert TOPICS.classify("site/b/streams/frames/cam-1") is None


def test_a_frame_is_acknowledged_when_an_outcome_names_it() -> None:
    acks = Acknowledgements(timeout_s=60)
    acks.hold("f-1", 7, now_s=0, digest=b"a")
    acks.hold("f-1", 7, now_s=1, digest=b"a")  # a redelivery while the first is in hand
    acks.hold("f-2", 8, now_s=0, digest=b"b")
    assert acks.settle("f-1") == {7}
    assert acks.settle("f-2/entry-3") == {8}  # a JSON request's entry names its frame
    assert acks.settle("f-1") == set()
    assert acks.held == 0


def test_a_redelivery_of_an_answered_frame_is_recognised_by_its_digest() -> None:
    acks = Acknowledgements(timeout_s=60)
    acks.hold("f-1", 7, now_s=0, digest=b"a")
    acks.settle("f-1")
    assert acks.answered("f-1", b"a")
    assert not acks.answered("f-1", b"another frame reusing the id")


def test_frames_held_past_the_timeout_are_released_oldest_first() -> None:
    acks = Acknowledgements(timeout_s=10)
    acks.hold("f-1", 1, now_s=0, digest=b"")
    acks.hold("f-2", 2, now_s=5, digest=b"")
    assert acks.expired(now_s=12) == {1}
    assert acks.expired(now_s=16) == {2}


def test_desired_documents_keep_their_version_or_are_numbered_on_arrival() -> None:
    desired = DesiredDocument()
    assert desired.take(b'{"$version": 4, "inference": {"top_k": 2}}', "t")
    assert not desired.take(b'{"$version": 4, "inference": {"top_k": 2}}', "t")
    assert desired.take(b'{"inference": {"top_k": 3}}', "t")
    assert desired.doc == {"inference": {"top_k": 3}, "$version": 5}
    assert not desired.take(b"not json", "t")
    assert desired.doc["$version"] == 5


def test_mqtt_settings_name_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as e:
        MqttSettings.from_env({"HUB": "mqtt", "MQTT_PORT": "0", "MQTT_CLIENT_ID": "a/b"})
    message = str(e.value)
    for problem in ("MQTT_MODULE is required", "MQTT_HOST is required", "MQTT_PORT", "a/b"):
        assert problem in message


def test_the_transport_defaults_to_edgehub_and_refuses_unknown_kinds() -> None:
    assert hub_kind({}) == "edgehub"
    assert hub_kind({"HUB": "MQTT"}) == "mqtt"
    with pytest.raises(SettingsError, match="HUB"):
        hub_kind({"HUB": "amqp"})


def test_service_account_token_authentication_goes_in_the_connect(tmp_path: Path) -> None:
    token = tmp_path / "broker-sat"
    token.write_text("eyJ-token")
    env = {
        "MQTT_HOST": "aio-broker",
        "MQTT_MODULE": "classifier",
        "MQTT_AUTH_METHOD": "K8S-SAT",
        "MQTT_AUTH_DATA_FILE": str(token),
    }
    properties = connect_properties(MqttSettings.from_env(env), receive_maximum=16)
    assert properties.AuthenticationMethod == "K8S-SAT"
    assert properties.AuthenticationData == b"eyJ-token"
    assert properties.ReceiveMaximum == 16
    assert properties.SessionExpiryInterval == 3600
