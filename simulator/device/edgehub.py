"""edgeHub's module-facing behaviour on top of the MQTT server: auth, routes, twins, methods.

It implements ``BrokerHooks`` (what the server asks the hub) and ``MethodTransport`` (how
direct methods reach a module). What a module may do is scoped to its own identity: it
publishes only under ``devices/{d}/modules/{m}/`` and ``$iothub/``, subscribes only to its
own inputs and ``$iothub`` topics, and ``$iothub`` responses go back only to the connection
that asked.

Messages routed to a module input before the module subscribed are held (bounded, oldest
dropped first and counted) and delivered when it subscribes, as edgeHub's store-and-forward
does for a module that starts after its producer, or that paused its input. With a
``SessionStore`` they are kept on disk too, and a restarted hub holds them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable

from simulator.deployment.routes import Router
from simulator.errors import HubError, SasTokenError
from simulator.hub.device_link import DeviceLink
from simulator.jsondoc import JsonObject
from simulator.messages import Message, input_topic, message_from_bag, parse_event_topic
from simulator.methods import MethodCalls
from simulator.mqtt import (
    EDGEHUB_MAX_MESSAGE_BYTES,
    ClientInfo,
    ConnackCode,
    DeliveryResult,
    MqttServer,
    PublishRejectedError,
)
from simulator.mqtt.session_store import SessionStore

log = logging.getLogger(__name__)

HELD_PER_MODULE = 1000
_OWN_TOPIC_FILTERS = (
    "$iothub/methods/POST/#",
    "$iothub/twin/res/#",
    "$iothub/twin/PATCH/properties/desired/#",
)


class EdgeHub:
    """One device's edgeHub. ``__init__`` only assigns; call :meth:`attach` with the server
    before it starts. It accepts only modules of its own device."""

    def __init__(self, link: DeviceLink, router: Router, store: SessionStore | None) -> None:
        self.link = link
        self.device_id = link.device_id
        self.router = router
        self.methods = MethodCalls(self)
        self.counters: Counter[str] = Counter()
        self._server: MqttServer | None = None
        self._connections: dict[str, int] = {}  # client id -> its current connection id
        # client id -> (row in the store or None, topic, payload), oldest first
        self._held: dict[str, deque[tuple[int | None, str, bytes]]] = {}
        self._store = store
        if store is not None:
            self._held = {c: deque(rows) for c, rows in store.load_held().items()}
        self._pushes: set[asyncio.Task[object]] = set()
        self._unsubscribe: Callable[[], None] = link.on_desired(self._desired_changed)

    def attach(self, server: MqttServer) -> None:
        self._server = server

    @property
    def server(self) -> MqttServer:
        if self._server is None:
            raise RuntimeError("EdgeHub.attach(server) was not called")
        return self._server

    def close(self) -> None:
        self._unsubscribe()

    # -- BrokerHooks ----------------------------------------------------------------------

    def authenticate(
        self, client_id: str, username: str | None, password: bytes | None
    ) -> ConnackCode:
        device_id, _, module_id = client_id.partition("/")
        if not module_id or "/" in module_id:
            self.counters["auth_refused"] += 1
            return ConnackCode.ID_REJECTED
        if device_id != self.device_id:
            # Modules of another device have their own edgeHub.
            log.info("refused %s: this edgeHub serves %s", client_id, self.device_id)
            self.counters["auth_refused"] += 1
            return ConnackCode.NOT_AUTHORIZED
        user_host, _, user_rest = (username or "").partition("/")
        if (
            password is None
            or user_host.lower() not in self.link.hub_host_names
            or not user_rest.startswith(f"{device_id}/{module_id}/")
        ):
            self.counters["auth_refused"] += 1
            return ConnackCode.BAD_CREDENTIALS
        try:
            self.link.verify_module_token(module_id, password.decode("utf-8"))
        except (SasTokenError, HubError, UnicodeDecodeError) as e:
            log.info("refused %s: %s", client_id, e)
            self.counters["auth_refused"] += 1
            return ConnackCode.NOT_AUTHORIZED
        return ConnackCode.ACCEPTED

    def may_subscribe(self, client: ClientInfo, topic_filter: str) -> bool:
        device_id, module_id = _identity(client)
        inputs = f"devices/{device_id}/modules/{module_id}/inputs/"
        return topic_filter in _OWN_TOPIC_FILTERS or topic_filter.startswith(inputs)

    async def on_connected(self, client: ClientInfo, session_present: bool) -> None:
        self._connections[client.client_id] = client.connection_id
        self.counters["connections"] += 1
        self.link.note_activity(_identity(client)[1])

    async def on_disconnected(self, client: ClientInfo) -> None:
        if self._connections.get(client.client_id) == client.connection_id:
            del self._connections[client.client_id]

    async def on_subscribed(self, client: ClientInfo, topic_filter: str) -> None:
        held = self._held.pop(client.client_id, None)
        while held:
            row_id, topic, payload = held.popleft()
            result = await self.server.deliver(client.client_id, topic, payload, qos=1)
            if result is DeliveryResult.NO_SUBSCRIPTION:
                # Subscribed to something else (e.g. methods) first: keep holding.
                held.appendleft((row_id, topic, payload))
                self._held[client.client_id] = held
                return
            self._release(row_id)

    async def on_publish(self, client: ClientInfo, topic: str, payload: bytes, qos: int) -> None:
        self.link.note_activity(_identity(client)[1])
        if topic.startswith("$iothub/"):
            await self._iothub_request(client, topic, payload)
            return
        event = parse_event_topic(topic)
        device_id, module_id = _identity(client)
        if event is None or (event.device_id, event.module_id) != (device_id, module_id):
            self.counters["publish_refused"] += 1
            raise PublishRejectedError(f"{client.client_id} may not publish to {topic!r}")
        if len(payload) > EDGEHUB_MAX_MESSAGE_BYTES:
            self.counters["publish_refused"] += 1
            raise PublishRejectedError(f"message of {len(payload)} bytes exceeds edgeHub's limit")
        message = message_from_bag(payload, event.bag, device_id=device_id, module_id=module_id)
        await self.route(device_id, module_id, message)

    async def route(self, device_id: str, module_id: str | None, message: Message) -> None:
        self.counters["messages_in"] += 1
        output = message.output_name
        for match in self.router.route(device_id, module_id, output, message):
            sink = match.sink
            if sink.module_id is None:
                self.link.send_upstream(module_id, output, message)
                self.counters["upstream"] += 1
                continue
            assert sink.input_name is not None
            topic = input_topic(device_id, sink.module_id, sink.input_name, message)
            await self._to_module(f"{device_id}/{sink.module_id}", topic, message.body)
        self.counters["routed"] += 1

    async def _to_module(self, client_id: str, topic: str, payload: bytes) -> None:
        held = self._held.get(client_id)
        if held:  # keep order behind what is already held
            self._hold(client_id, topic, payload)
            return
        result = await self.server.deliver(client_id, topic, payload, qos=1)
        if result in (DeliveryResult.NO_SUBSCRIPTION, DeliveryResult.NO_SESSION):
            self._hold(client_id, topic, payload)
        else:
            self.counters["delivered"] += 1

    def _hold(self, client_id: str, topic: str, payload: bytes) -> None:
        held = self._held.setdefault(client_id, deque())
        if len(held) >= HELD_PER_MODULE:
            self._release(held.popleft()[0])
            self.counters["held_dropped"] += 1
        row_id = self._store.hold(client_id, topic, payload) if self._store is not None else None
        held.append((row_id, topic, payload))

    def _release(self, row_id: int | None) -> None:
        if self._store is not None and row_id is not None:
            self._store.release(row_id)

    # -- $iothub requests -----------------------------------------------------------------

    async def _iothub_request(self, client: ClientInfo, topic: str, payload: bytes) -> None:
        _, module_id = _identity(client)
        path, _, query = topic.partition("/?")
        params = dict(urllib.parse.parse_qsl(query))
        rid = params.get("$rid", "")
        if path == "$iothub/twin/GET":
            body = json.dumps(self.link.module_twin(module_id)).encode()
            await self._reply(client, f"$iothub/twin/res/200/?$rid={rid}", body)
        elif path == "$iothub/twin/PATCH/properties/reported":
            try:
                patch = json.loads(payload or b"null")
                version = self.link.patch_reported(module_id, patch)
            except ValueError as e:
                await self._reply(client, f"$iothub/twin/res/400/?$rid={rid}", _error_body(str(e)))
            except HubError as e:
                await self._reply(
                    client, f"$iothub/twin/res/{e.status}/?$rid={rid}", _error_body(str(e))
                )
            else:
                await self._reply(
                    client, f"$iothub/twin/res/204/?$rid={rid}&$version={version}", b""
                )
        elif path.startswith("$iothub/methods/res/"):
            if not self.methods.handle_response(client.client_id, topic, payload):
                self.counters["late_method_responses"] += 1
        else:
            self.counters["publish_refused"] += 1
            raise PublishRejectedError(f"unsupported $iothub topic {topic!r}")

    async def _reply(self, client: ClientInfo, topic: str, body: bytes) -> None:
        # Answers belong to the connection that asked: a client that reconnected meanwhile
        # re-requests (the SDK does), so a stale answer must not reach the new connection.
        if self._connections.get(client.client_id) != client.connection_id:
            self.counters["stale_responses_dropped"] += 1
            return
        await self.server.deliver(client.client_id, topic, body, qos=0)

    def _desired_changed(self, module_id: str, patch: JsonObject) -> None:
        version = patch.get("$version")
        topic = f"$iothub/twin/PATCH/properties/desired/?$version={version}"
        client_id = f"{self.device_id}/{module_id}"
        if self._server is None or not self.server.is_connected(client_id):
            return  # the SDK GETs the whole twin after it reconnects
        body = json.dumps(patch).encode()
        # Twin stores are synchronous; the push is sent from a task that is kept referenced.
        task = asyncio.get_running_loop().create_task(
            self.server.deliver(client_id, topic, body, qos=1)
        )
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    # -- DeviceEndpoint (what the hub reaches) and MethodTransport -------------------------

    def is_connected(self, module_id: str) -> bool:
        return self._server is not None and self.server.is_connected(
            f"{self.device_id}/{module_id}"
        )

    def is_reachable(self, client_id: str) -> bool:
        return self.server.is_connected(client_id) and any(
            f.startswith("$iothub/methods/POST/") for f in self.server.subscriptions(client_id)
        )

    async def deliver(self, client_id: str, topic: str, payload: bytes) -> None:
        await self.server.deliver(client_id, topic, payload, qos=0)


def _identity(client: ClientInfo) -> tuple[str, str]:
    device_id, _, module_id = client.client_id.partition("/")
    return device_id, module_id


def _error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()
