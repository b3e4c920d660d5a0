"""Direct method bookkeeping: answers, 404, 504, size limits and late replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from simulator.errors import HubError
from simulator.jsondoc import JsonValue
from simulator.methods import (
    LoopbackTransport,
    MethodCalls,
    in_process_dispatcher,
    parse_request_topic,
    parse_response_topic,
)


@pytest.fixture
async def dispatcher() -> AsyncIterator[tuple[MethodCalls, LoopbackTransport]]:
    calls, transport = in_process_dispatcher()
    yield calls, transport
    await transport.close()


async def echo(name: str, payload: JsonValue) -> tuple[int, JsonValue]:
    return 200, {"method": name, "got": payload}


async def test_a_connected_module_answers_with_status_and_payload(
    dispatcher: tuple[MethodCalls, LoopbackTransport],
) -> None:
    calls, transport = dispatcher
    transport.register("dev1", "classifier", echo)
    result = await calls.invoke("dev1", "classifier", "ping", {"n": 1}, response_timeout_s=2)
    assert (result.status, result.payload) == (200, {"method": "ping", "got": {"n": 1}})
    assert calls.pending_count == 0


async def test_a_module_that_is_not_connected_is_a_404(
    dispatcher: tuple[MethodCalls, LoopbackTransport],
) -> None:
    calls, _ = dispatcher
    with pytest.raises(HubError) as caught:
        await calls.invoke("dev1", "classifier", "ping", None, response_timeout_s=1)
    assert caught.value.status == 404


async def test_a_connect_timeout_waits_for_the_module_to_come_online(
    dispatcher: tuple[MethodCalls, LoopbackTransport],
) -> None:
    calls, transport = dispatcher
    asyncio.get_running_loop().call_later(0.1, transport.register, "dev1", "classifier", echo)
    result = await calls.invoke(
        "dev1", "classifier", "ping", 1, response_timeout_s=2, connect_timeout_s=2
    )
    assert result.status == 200


async def test_a_module_that_does_not_answer_in_time_is_a_504(
    dispatcher: tuple[MethodCalls, LoopbackTransport],
) -> None:
    calls, transport = dispatcher

    async def slow(_name: str, _payload: JsonValue) -> tuple[int, JsonValue]:
        await asyncio.sleep(5)
        return 200, None

    transport.register("dev1", "classifier", slow)
    with pytest.raises(HubError) as caught:
        await calls.invoke("dev1", "classifier", "ping", None, response_timeout_s=0.1)
    assert caught.value.status == 504
    assert calls.pending_count == 0


async def test_a_payload_over_128_kb_is_refused(
    dispatcher: tuple[MethodCalls, LoopbackTransport],
) -> None:
    calls, transport = dispatcher
    transport.register("dev1", "classifier", echo)
    with pytest.raises(HubError) as caught:
        await calls.invoke("dev1", "classifier", "ping", "x" * 131_072, response_timeout_s=1)
    assert caught.value.status == 413


@pytest.mark.parametrize("name", ["", "a/b", "a#", "x" * 101])
async def test_invalid_method_names_are_refused(
    dispatcher: tuple[MethodCalls, LoopbackTransport], name: str
) -> None:
    calls, transport = dispatcher
    transport.register("dev1", "classifier", echo)
    with pytest.raises(HubError) as caught:
        await calls.invoke("dev1", "classifier", name, None, response_timeout_s=1)
    assert caught.value.status == 400


def test_a_reply_for_an_unknown_request_is_ignored() -> None:
    calls, _ = in_process_dispatcher()
    assert not calls.handle_response("dev1/classifier", "$iothub/methods/res/200/?$rid=99", b"{}")
    assert not calls.handle_response("dev1/classifier", "devices/dev1/messages/events/", b"{}")


def test_request_and_response_topics_round_trip_the_sdk_formats() -> None:
    assert parse_request_topic("$iothub/methods/POST/reload_model/?$rid=1f") == (
        "reload_model",
        "1f",
    )
    assert parse_response_topic("$iothub/methods/res/200/?$rid=1f") == (200, "1f")
    assert parse_response_topic("$iothub/methods/res/abc/?$rid=1") is None
    assert parse_response_topic("$iothub/methods/res/200/") is None
