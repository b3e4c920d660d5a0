"""edgeHub routes: parsing, source matching, conditions, sinks and de-duplication."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.deployment.routes import (
    UPSTREAM_SINK,
    Router,
    Sink,
    parse_route,
    parse_routes,
)
from simulator.errors import RouteSyntaxError
from simulator.messages import Message

CAMERA_TO_CLASSIFIER = 'FROM /messages/modules/camera/outputs/frames INTO BrokeredEndpoint("/modules/classifier/inputs/frames")'


def json_message(body: object, **properties: str) -> Message:
    return Message(
        json.dumps(body).encode(),
        properties=properties,
        content_type="application/json",
        content_encoding="utf-8",
    )


def sinks(router: Router, module: str | None, output: str | None, message: Message) -> list[str]:
    return [str(m.sink) for m in router.route("dev1", module, output, message)]


def test_a_brokered_endpoint_names_the_module_input() -> None:
    route = parse_route(CAMERA_TO_CLASSIFIER)
    assert route.sink == Sink("classifier", "frames")
    assert route.source == "/messages/modules/camera/outputs/frames"
    assert route.condition is None


def test_keywords_and_upstream_are_case_insensitive() -> None:
    route = parse_route("from /messages/* where $contentType = 'application/json' into $UPSTREAM")
    assert route.sink is UPSTREAM_SINK
    assert route.condition is not None


@pytest.mark.parametrize(
    ("source", "module", "output", "expected"),
    [
        ("/*", "classifier", "predictions", True),
        ("/*", None, None, True),
        ("/messages/*", None, None, True),
        ("/messages/modules/*", "classifier", "predictions", True),
        ("/messages/modules/*", None, None, False),
        ("/messages/modules/classifier/*", "classifier", "predictions", True),
        ("/messages/modules/classifier/*", "classifier", None, True),
        ("/messages/modules/classifier/*", "camera", "frames", False),
        ("/messages/modules/classifier/outputs/*", "classifier", "predictions", True),
        ("/messages/modules/classifier/outputs/*", "classifier", None, False),
        ("/messages/modules/classifier/outputs/predictions", "classifier", "predictions", True),
        ("/messages/modules/classifier/outputs/predictions", "classifier", "predictions2", False),
        ("/messages/modules/classifier/outputs/predictions", "classifier", "errors", False),
        ("/messages/modules/CLASSIFIER/outputs/*", "classifier", "x", True),
    ],
)
def test_sources_select_messages_as_edgehub_does(
    source: str, module: str | None, output: str | None, expected: bool
) -> None:
    router = Router([parse_route(f"FROM {source} INTO $upstream")])
    assert bool(router.route("dev1", module, output, Message(b""))) is expected


def test_a_where_clause_sees_application_properties() -> None:
    router = Router([parse_route("FROM /* WHERE label = 'cat' INTO $upstream")])
    assert sinks(router, "classifier", "p", Message(b"", properties={"label": "cat"})) == [
        "$upstream"
    ]
    assert sinks(router, "classifier", "p", Message(b"", properties={"label": "dog"})) == []


def test_a_where_clause_sees_the_json_body() -> None:
    router = Router([parse_route("FROM /* WHERE $body.top.confidence >= 0.8 INTO $upstream")])
    assert sinks(router, "c", "p", json_message({"top": {"confidence": 0.9}})) == ["$upstream"]
    assert sinks(router, "c", "p", json_message({"top": {"confidence": 0.1}})) == []
    opaque = Message(b'{"top": {"confidence": 0.9}}')
    assert sinks(router, "c", "p", opaque) == []


def test_connection_properties_come_from_the_route_call_not_the_sender() -> None:
    router = Router([parse_route("FROM /* WHERE $connectionModuleId = 'camera' INTO $upstream")])
    forged = Message(b"", connection_module_id="camera")
    assert sinks(router, "classifier", "p", forged) == []
    assert sinks(router, "camera", "frames", Message(b"")) == ["$upstream"]


def test_a_message_matching_two_routes_to_one_sink_goes_there_once_under_the_best_priority() -> (
    None
):
    routes = parse_routes(
        {
            "all": {"route": "FROM /* INTO $upstream", "priority": 5, "timeToLiveSecs": 60},
            "cats": {"route": "FROM /* WHERE label = 'cat' INTO $upstream", "priority": 1},
            "fanout": CAMERA_TO_CLASSIFIER.replace("camera/outputs/frames", "camera/*"),
        }
    )
    matches = Router(routes).route(
        "dev1", "camera", "frames", Message(b"", properties={"label": "cat"})
    )
    assert [(str(m.sink), m.route.name) for m in matches] == [
        ("$upstream", "cats"),
        ('BrokeredEndpoint("/modules/classifier/inputs/frames")', "fanout"),
    ]


def test_route_objects_carry_priority_and_time_to_live() -> None:
    [route] = parse_routes(
        {"r": {"route": "FROM /* INTO $upstream", "priority": 2, "timeToLiveSecs": 30}}
    )
    assert (route.priority, route.time_to_live_s) == (2, 30)


def test_a_router_is_built_from_edgehub_desired_properties() -> None:
    router = Router.from_edgehub_desired(
        {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"}}
    )
    assert [r.name for r in router.routes] == ["up"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("INTO $upstream", "must start with 'FROM"),
        ("FROM messages/* INTO $upstream", "must start with '/'"),
        ("FROM /* $upstream", "expected WHERE or INTO"),
        ("FROM /* WHERE a = 1", "expected INTO"),
        ("FROM /* INTO", "expected \\$upstream or BrokeredEndpoint"),
        ("FROM /* INTO $upstream extra", "end of the route"),
        ('FROM /* INTO BrokeredEndpoint("/modules/x/outputs/y")', "is not /modules"),
        ('FROM /* INTO BrokeredEndpoint("/modules/x/inputs/y"', "expected '\\)'"),
        ("FROM /* WHERE $nonsense = 1 INTO $upstream", "unknown system property"),
        ("FROM /* WHERE $twin.tags.a = 1 INTO $upstream", "cannot query \\$twin"),
        ("FROM /* WHERE a = INTO $upstream", "expected a value"),
    ],
)
def test_bad_routes_are_refused_with_the_route_name_and_a_reason(text: str, reason: str) -> None:
    with pytest.raises(RouteSyntaxError, match=reason) as caught:
        parse_route(text, "myroute")
    assert "'myroute'" in str(caught.value)


@pytest.mark.parametrize(
    "routes",
    [
        [],
        {"r": 5},
        {"r": {"priority": 1}},
        {"r": {"route": "FROM /* INTO $upstream", "priority": 10}},
        {"r": {"route": "FROM /* INTO $upstream", "timeToLiveSecs": -1}},
        {"r": {"route": "FROM /* INTO $upstream", "priority": True}},
    ],
)
def test_bad_route_tables_are_refused(routes: object) -> None:
    with pytest.raises(RouteSyntaxError):
        parse_routes(routes)


@settings(deadline=None)
@given(st.text(max_size=200))
def test_route_parsing_never_crashes_on_junk(junk: str) -> None:
    for text in (junk, "FROM /* WHERE " + junk + " INTO $upstream", "FROM /* INTO " + junk):
        try:
            route = parse_route(text)
        except RouteSyntaxError:
            continue
        Router([route]).route("d", "m", "o", json_message({"a": 1}, a="1"))
