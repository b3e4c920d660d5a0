# mypy: disallow-untyped-calls=False
"""Message property bags agree with azure-iot-device's own topic encoding, both ways."""

from __future__ import annotations

from azure.iot.device import Message as SdkMessage
from azure.iot.device.iothub.pipeline import mqtt_topic_iothub as sdk_topics

from simulator.messages import Message, input_topic, message_from_bag, parse_event_topic


def sdk_output_topic() -> str:
    message = SdkMessage(b'{"label": "cat"}')
    message.output_name = "predictions"
    message.message_id = "m-1"
    message.correlation_id = "frame 17"
    message.content_type = "application/json"
    message.content_encoding = "utf-8"
    message.custom_properties = {"label": "cat & dog", "$.cdid": "spoofed"}
    topic = sdk_topics.get_telemetry_topic_for_publish("dev1", "classifier")
    return str(sdk_topics.encode_message_properties_in_topic(message, topic))


def test_an_sdk_output_topic_parses_into_sender_and_properties() -> None:
    event = parse_event_topic(sdk_output_topic())
    assert event is not None
    assert (event.device_id, event.module_id) == ("dev1", "classifier")
    message = message_from_bag(b"{}", event.bag, device_id="dev1", module_id="classifier")
    assert message.output_name == "predictions"
    assert message.message_id == "m-1"
    assert message.correlation_id == "frame 17"
    assert message.content_type == "application/json"
    assert message.content_encoding == "utf-8"
    assert message.properties == {"label": "cat & dog"}


def test_a_sender_cannot_claim_another_source() -> None:
    event = parse_event_topic(sdk_output_topic())
    assert event is not None
    message = message_from_bag(b"", event.bag, device_id="dev1", module_id="classifier")
    assert message.connection_device_id == "dev1"
    assert "$.cdid" not in message.properties


def test_a_leaf_device_topic_has_no_module() -> None:
    event = parse_event_topic("devices/leaf/messages/events/a=1")
    assert event is not None
    assert (event.device_id, event.module_id, event.bag) == ("leaf", None, "a=1")


def test_other_topics_are_not_events() -> None:
    assert parse_event_topic("$iothub/twin/GET/?$rid=1") is None
    assert parse_event_topic("devices/d/modules/m/inputs/x") is None


def test_the_sdk_reads_an_input_topic_back_into_the_same_message() -> None:
    sent = Message(
        body=b"x",
        properties={"label": "cat & dog", "score": "0.9"},
        message_id="m-1",
        correlation_id="c 1",
        content_type="application/json",
        content_encoding="utf-8",
        connection_device_id="dev1",
        connection_module_id="camera",
    )
    topic = input_topic("dev1", "classifier", "frames", sent)
    assert sdk_topics.is_input_topic(topic, "dev1", "classifier")
    assert sdk_topics.get_input_name_from_topic(topic) == "frames"
    received = SdkMessage(b"x")
    sdk_topics.extract_message_properties_from_topic(topic, received)
    assert received.message_id == "m-1"
    assert received.correlation_id == "c 1"
    assert received.content_type == "application/json"
    assert received.custom_properties == {
        "label": "cat & dog",
        "score": "0.9",
        "$.cdid": "dev1",
        "$.cmid": "camera",
    }


def test_a_json_body_is_visible_only_with_json_content_type_and_utf_encoding() -> None:
    body = b'{"a": 1}'
    assert Message(body, content_type="application/json", content_encoding="utf-8").json_body() == (
        True,
        {"a": 1},
    )
    assert Message(body, content_type="application/json").json_body() == (False, None)
    assert Message(body, content_encoding="utf-8").json_body() == (False, None)
    assert Message(b"{", content_type="application/json", content_encoding="utf-8").json_body() == (
        False,
        None,
    )
