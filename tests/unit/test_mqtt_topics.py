"""Topic filters: validity and matching, including the `$` rule IoT Hub topics depend on."""

from __future__ import annotations

import pytest

from simulator.mqtt.topics import is_valid_topic_filter, is_valid_topic_name, topic_matches


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("a/+/c", "a//c", True),
        ("devices/d/modules/m/inputs/#", "devices/d/modules/m/inputs/in1/%24.cdid=x", True),
        ("devices/d/modules/m/inputs/#", "devices/d/modules/other/inputs/in1/", False),
        ("$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1", True),
        ("$iothub/methods/POST/#", "$iothub/methods/POST/reset/?$rid=7", True),
        ("#", "$iothub/twin/res/200/?$rid=1", False),
        ("+/twin/res/#", "$iothub/twin/res/200/?$rid=1", False),
        ("a/b", "A/b", False),
    ],
)
def test_filter_matching_follows_mqtt_4_7(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    "topic_filter", ["#", "+", "a/#", "a/+/b", "+/+", "/", "$iothub/twin/res/#"]
)
def test_valid_filters_are_accepted(topic_filter: str) -> None:
    assert is_valid_topic_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a#", "a/b+", "+a", "##", "a\x00"])
def test_invalid_filters_are_refused(topic_filter: str) -> None:
    assert not is_valid_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic", "valid"), [("a/b", True), ("/", True), ("", False), ("a/+", False), ("#", False)]
)
def test_topic_names_carry_no_wildcards(topic: str, valid: bool) -> None:
    assert is_valid_topic_name(topic) is valid
