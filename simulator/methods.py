"""Direct method calls: the hub side of ``$iothub/methods/POST/{name}/?$rid={rid}``.

``MethodCalls`` keeps the calls in flight, keyed by (client id, request id): it publishes the
request through a ``MethodTransport`` (the MQTT server, or the in-process loopback below) and
completes the caller when the module answers on ``$iothub/methods/res/{status}/?$rid={rid}``.
Outcomes follow IoT Hub: 404 when the module is not connected (after waiting up to the
connect timeout), 504 when it does not answer in time, 413 when a payload exceeds 128 KB.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from simulator.errors import HubError
from simulator.jsondoc import JsonValue

PAYLOAD_MAX_BYTES = 128 * 1024
MAX_TIMEOUT_S = 300.0
_REQUEST_PREFIX = "$iothub/methods/POST/"
_RESPONSE_PREFIX = "$iothub/methods/res/"
_REACHABILITY_POLL_S = 0.05


@dataclass(frozen=True)
class MethodResult:
    status: int
    payload: JsonValue


class MethodDispatcher(Protocol):
    """What the service API needs: invoke a module's method and get its answer."""

    async def invoke(
        self,
        device_id: str,
        module_id: str,
        method_name: str,
        payload: JsonValue,
        *,
        response_timeout_s: float,
        connect_timeout_s: float = 0.0,
    ) -> MethodResult:
        """The module's status and payload; ``HubError`` (404, 413, 504, 400) otherwise."""
        ...


class MethodTransport(Protocol):
    def is_reachable(self, client_id: str) -> bool:
        """Connected and subscribed to ``$iothub/methods/POST/#``."""
        ...

    async def deliver(self, client_id: str, topic: str, payload: bytes) -> None: ...


def client_id_of(device_id: str, module_id: str) -> str:
    return f"{device_id}/{module_id}"


def request_topic(method_name: str, request_id: str) -> str:
    return f"{_REQUEST_PREFIX}{method_name}/?$rid={request_id}"


def encode_payload(payload: JsonValue) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    if len(data) > PAYLOAD_MAX_BYTES:
        raise HubError(
            413, "RequestEntityTooLarge", f"method payload is {len(data)} bytes; limit 128 KB"
        )
    return data


class MethodCalls:
    """Implements ``MethodDispatcher`` over any ``MethodTransport``."""

    def __init__(self, transport: MethodTransport) -> None:
        self._transport = transport
        self._pending: dict[tuple[str, str], asyncio.Future[MethodResult]] = {}
        self._ids = itertools.count(1)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    async def invoke(
        self,
        device_id: str,
        module_id: str,
        method_name: str,
        payload: JsonValue,
        *,
        response_timeout_s: float,
        connect_timeout_s: float = 0.0,
    ) -> MethodResult:
        _check_method_name(method_name)
        _check_timeout(response_timeout_s, "responseTimeoutInSeconds")
        _check_timeout(connect_timeout_s, "connectTimeoutInSeconds")
        body = encode_payload(payload)
        client_id = client_id_of(device_id, module_id)
        await self._wait_until_reachable(client_id, connect_timeout_s)
        # IoT Hub's request ids are hex counters; any string unique per connection works.
        request_id = format(next(self._ids), "x")
        key = (client_id, request_id)
        future: asyncio.Future[MethodResult] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            await self._transport.deliver(client_id, request_topic(method_name, request_id), body)
            return await asyncio.wait_for(future, response_timeout_s)
        except TimeoutError:
            raise HubError(
                504,
                "GatewayTimeout",
                f"timed out waiting for {device_id}/{module_id} to answer {method_name!r}",
            ) from None
        finally:
            self._pending.pop(key, None)

    async def _wait_until_reachable(self, client_id: str, connect_timeout_s: float) -> None:
        deadline = time.monotonic() + connect_timeout_s
        while not self._transport.is_reachable(client_id):
            if time.monotonic() >= deadline:
                raise HubError(404, "DeviceNotOnline", f"module {client_id} is not connected")
            await asyncio.sleep(_REACHABILITY_POLL_S)

    def handle_response(self, client_id: str, topic: str, payload: bytes) -> bool:
        """Complete a call from a module's ``$iothub/methods/res/...`` PUBLISH.

        Returns False for topics that are not method responses or for unknown/late request
        ids (the caller already got its 504); the module is not told either way, as on IoT Hub.
        """
        parsed = parse_response_topic(topic)
        if parsed is None:
            return False
        status, request_id = parsed
        future = self._pending.get((client_id, request_id))
        if future is None or future.done():
            return False
        future.set_result(MethodResult(status, _decode_response(payload)))
        return True


def parse_response_topic(topic: str) -> tuple[int, str] | None:
    """``$iothub/methods/res/{status}/?$rid={rid}`` -> (status, rid)."""
    if not topic.startswith(_RESPONSE_PREFIX):
        return None
    status_text, _, query = topic[len(_RESPONSE_PREFIX) :].partition("/?")
    request_ids = urllib.parse.parse_qs(query).get("$rid")
    try:
        status = int(urllib.parse.unquote(status_text))
    except ValueError:
        return None
    if not request_ids:
        return None
    return status, request_ids[0]


def parse_request_topic(topic: str) -> tuple[str, str] | None:
    """``$iothub/methods/POST/{name}/?$rid={rid}`` -> (name, rid)."""
    if not topic.startswith(_REQUEST_PREFIX):
        return None
    name, _, query = topic[len(_REQUEST_PREFIX) :].partition("/?")
    request_ids = urllib.parse.parse_qs(query).get("$rid")
    if not name or not request_ids:
        return None
    return name, request_ids[0]


def _decode_response(payload: bytes) -> JsonValue:
    if not payload.strip():
        return None
    try:
        value: JsonValue = json.loads(payload)
    except ValueError:
        # The SDK always sends JSON; keep anything else visible rather than failing the call.
        return payload.decode("utf-8", errors="replace")
    return value


def _check_method_name(name: str) -> None:
    if not name or len(name) > 100 or any(c in name for c in "/#+?") or not name.isprintable():
        raise HubError(400, "ArgumentInvalid", f"invalid method name {name!r}")


def _check_timeout(value: float, field: str) -> None:
    if not 0 <= value <= MAX_TIMEOUT_S:
        raise HubError(400, "ArgumentInvalid", f"{field} must be 0..{MAX_TIMEOUT_S:g}")


# -- in-process modules ----------------------------------------------------------------------

MethodHandler = Callable[[str, JsonValue], Awaitable[tuple[int, JsonValue]]]


class LoopbackTransport:
    """A ``MethodTransport`` whose "modules" are Python handlers in this process.

    Requests and answers still travel as topics and JSON bytes, so the bookkeeping in
    ``MethodCalls`` is exercised exactly as over MQTT.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, MethodHandler] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls: MethodCalls | None = None

    def register(self, device_id: str, module_id: str, handler: MethodHandler) -> None:
        self._handlers[client_id_of(device_id, module_id)] = handler

    def unregister(self, device_id: str, module_id: str) -> None:
        self._handlers.pop(client_id_of(device_id, module_id), None)

    def is_reachable(self, client_id: str) -> bool:
        return client_id in self._handlers

    async def deliver(self, client_id: str, topic: str, payload: bytes) -> None:
        parsed = parse_request_topic(topic)
        handler = self._handlers.get(client_id)
        if parsed is None or handler is None:
            return
        task = asyncio.create_task(self._answer(client_id, handler, *parsed, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, client_id: str, handler: MethodHandler, name: str, request_id: str, payload: bytes
    ) -> None:
        status, answer = await handler(name, json.loads(payload))
        if self.calls is not None:
            topic = f"{_RESPONSE_PREFIX}{status}/?$rid={request_id}"
            self.calls.handle_response(client_id, topic, json.dumps(answer).encode("utf-8"))

    async def close(self) -> None:
        """Cancel handlers still running (e.g. ones the caller already timed out on)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def in_process_dispatcher() -> tuple[MethodCalls, LoopbackTransport]:
    """A dispatcher for tests and in-process modules; register handlers on the transport."""
    transport = LoopbackTransport()
    calls = MethodCalls(transport)
    transport.calls = calls
    return calls, transport
