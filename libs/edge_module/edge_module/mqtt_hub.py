"""The ``Hub`` over any MQTT v5 broker (docs/mqtt.md has the topic contract).

Threading: paho reads on its own thread; every callback hands its work to the module's loop
with ``call_soon_threadsafe`` and returns, so paho's thread never waits for the module.

Flow control: the broker sends at most ``intake_capacity`` unacknowledged messages (the
CONNECT's Receive Maximum), and a frame is acknowledged only once its outcome is out
(``mqtt_acks``, ``mqtt_intake``), so the frames a replica holds are bounded by that window
and the rest stay with the broker, or go to the other replicas of the shared subscription. Desired documents
and method requests are subscribed at QoS 0: a full frame window never holds them back. The
desired document is retained and sent again at every subscription, which makes ``get_desired
_properties`` a real round trip (the watchdog's probe of the line); a method request lost in a
disconnect times out at the caller, as a direct method does when a module is offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_module.counting import Counting, Counts
from edge_module.errors import HubError, OutboundRejectedError
from edge_module.hub import (
    DesiredHandler,
    MessageHandler,
    MethodHandler,
    OutboundMessage,
    merge_patch,
)
from edge_module.mqtt_acks import Acknowledgements
from edge_module.mqtt_client import (
    BrokerClient,
    check_tls,
    code_of,
    connect_properties,
    correlation_of,
    inbound,
    new_client,
    publish_properties,
    reason_text,
    response_properties,
    response_topic_of,
)
from edge_module.mqtt_intake import FrameIntake
from edge_module.mqtt_requests import DesiredDocument, method_response
from edge_module.mqtt_settings import MqttSettings
from edge_module.mqtt_topics import DesiredSettings, MethodRequest, Streamed, Topics

log = logging.getLogger(__name__)

_FAILURE = 0x80  # reason codes from here up are refusals
_NO_SUBSCRIBERS = 0x10


# Method calls answered at once; more are refused with 503 (a bounded queue of zero).
MAX_METHODS_IN_FLIGHT = 8


class MqttHub:
    def __init__(
        self,
        settings: MqttSettings,
        loop: asyncio.AbstractEventLoop,
        intake_capacity: int = 32,
        metrics: Counting | None = None,
        inputs: tuple[str, ...] = ("frames",),
    ) -> None:
        self.settings = settings
        self.topics = Topics(
            settings.topic_prefix, settings.module, settings.client_id, settings.group
        )
        self._loop = loop
        self._window = intake_capacity
        self._inputs = inputs
        self._client = self._new_client()
        self._desired_handler: DesiredHandler | None = None
        self._method_handler: MethodHandler | None = None
        # Set while paho's network thread runs. Without it, paho writes to the socket from the
        # caller's thread, beside a connect or a thread being stopped: a corrupt TLS stream.
        self._online = asyncio.Event()
        self._deferred_acks: list[int] = []
        self._metrics: Counting = metrics or Counts()
        self._acks = Acknowledgements(settings.ack_timeout_s)
        self._intake = FrameIntake(
            max(2 * intake_capacity, settings.intake_backlog),
            self._acks,
            self._acknowledge,
            self._reconnect,
            self._metrics,
            settings.client_id,
        )
        self._publishes: dict[int, asyncio.Future[int]] = {}
        self._subscribes: dict[int, asyncio.Future[list[int]]] = {}
        self._connack: asyncio.Future[int] | None = None
        self._desired = DesiredDocument()
        self._reported: dict[str, Any] = {}
        self._report_lock = asyncio.Lock()
        self._warned_qos0 = False
        self._methods_running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._up = False  # the first connect completed: later CONNACKs are reconnects
        self._closed = False

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected())

    async def connect(self) -> None:
        self._check_open()
        await self._open_session(self._client)
        self._up = True
        self._spawn(self._intake.dispatch(), "mqtt-intake")
        self._spawn(self._intake.expire(min(5.0, self.settings.ack_timeout_s / 4)), "mqtt-acks")

    async def renew(self) -> None:
        """A new client on a new connection; the broker resumes the session (same client id),
        and resends what was not acknowledged, with the same packet ids that are held here."""
        self._check_open()
        self._online.clear()
        old, self._client = self._client, self._new_client()
        self._spawn(asyncio.to_thread(_stop, old), "mqtt-abandoned-client")
        # The old client's packet ids die with it (the new one counts from 1 again): what
        # waited on them fails now, and the callers (the outbox, reports) send again.
        self._fail_pending("the connection was renewed")
        await self._open_session(self._client)
        self._metrics.count("hub_renewals")

    def _fail_pending(self, reason: str) -> None:
        waiting: list[asyncio.Future[Any]] = [*self._publishes.values(), *self._subscribes.values()]
        self._publishes.clear()
        self._subscribes.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(HubError(reason))

    async def _reconnect(self) -> None:
        """The same client on a new connection. A clean DISCONNECT goes out after the
        acknowledgements queued before it, so none is lost; paho keeps its unacknowledged
        publishes and sends them again; the broker resumes the session and resends ours."""
        self._online.clear()
        await asyncio.to_thread(_stop, self._client)
        try:
            await self._open_session(self._client)
        except HubError as e:  # the watchdog renews a connection that stays down
            log.warning("reconnecting failed: %s", e)

    async def send(self, output: str, message: OutboundMessage) -> None:
        await self.publish_output(output, message)

    async def publish_output(self, output: str, message: OutboundMessage) -> int:
        """``send``, returning the PUBACK's reason code: 0x10 says no subscription matched,
        and the broker dropped the message (as edgeHub drops one that no route takes)."""
        self._check_open()
        try:
            properties = publish_properties(message)
        except (ValueError, TypeError, UnicodeError) as e:
            raise OutboundRejectedError(f"output {output!r} refused the message: {e}") from e
        code = await self._publish(
            self.topics.output(output), message.body, properties, f"output {output!r}"
        )
        for packet_id in self._acks.settle(message.correlation_id):
            self._acknowledge(packet_id)
        if code == _NO_SUBSCRIBERS:
            self._metrics.count("mqtt_sent_without_subscribers")
        return code

    def on_message(self, handler: MessageHandler) -> None:
        self._intake.handler = handler

    def on_desired_properties(self, handler: DesiredHandler) -> None:
        self._desired_handler = handler

    def on_method(self, handler: MethodHandler) -> None:
        self._method_handler = handler

    async def get_desired_properties(self) -> dict[str, Any]:
        self._check_open()
        await self._refresh_desired()
        return dict(self._desired.doc)

    async def report(self, patch: dict[str, Any]) -> None:
        self._check_open()
        # One at a time: the retained document published last must be the latest merge.
        async with self._report_lock:
            reported = merge_patch(self._reported, patch)
            body = json.dumps(reported).encode()
            properties = publish_properties(OutboundMessage(body))
            await self._publish(self.topics.reported, body, properties, "reported", retain=True)
            self._reported = reported

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # A normal DISCONNECT keeps the session (clean start off, session expiry set).
        self._online.clear()
        await asyncio.to_thread(_stop, self._client)
        waiting: list[asyncio.Future[Any]] = [*self._publishes.values()]
        waiting += self._subscribes.values()
        for future in waiting:
            if not future.done():
                future.set_exception(HubError("the hub connection is closed"))

    # -- connection ------------------------------------------------------------------------

    def _new_client(self) -> BrokerClient:
        client = new_client(self.settings, self._window)
        client.on_connect = self._paho_connect
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        client.on_subscribe = self._paho_subscribe
        client.on_disconnect = self._paho_disconnect
        return client

    async def _open_session(self, client: BrokerClient) -> None:
        s = self.settings
        self._connack = self._loop.create_future()
        try:
            if s.tls:
                await asyncio.to_thread(check_tls, s, s.connect_timeout_s)
            # Blocking (TCP, TLS, CONNECT): off the loop. clean_start=False resumes the session.
            await asyncio.to_thread(
                client.connect,
                s.host,
                s.port,
                s.keepalive_s,
                clean_start=False,
                properties=connect_properties(s, self._window),
            )
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise HubError(f"cannot reach the MQTT broker at {s.host}:{s.port}: {e}") from e
        client.loop_start()
        self._online.set()
        deferred, self._deferred_acks = self._deferred_acks, []
        for packet_id in deferred:
            client.acknowledge(packet_id)
        try:
            code = await asyncio.wait_for(asyncio.shield(self._connack), s.connect_timeout_s)
        except TimeoutError as e:
            self._online.clear()
            await asyncio.to_thread(_stop, client)
            raise HubError(f"the MQTT broker at {s.host}:{s.port} did not answer CONNECT") from e
        if code >= _FAILURE:
            self._online.clear()
            await asyncio.to_thread(_stop, client)
            raise HubError(
                f"the MQTT broker refused client {s.client_id!r} (user "
                f"{s.username or '-'}): {reason_text(code, PacketTypes.CONNACK)}"
            )
        await self._subscribe_all()

    async def _subscribe_all(self) -> None:
        topics = self.topics
        await self._refresh_desired()
        filters = [(f, 0) for f in topics.method_filters]
        if self._intake.handler is not None:
            filters += [(topics.input_filter(name), 1) for name in self._inputs]
        await self._subscribe(filters)

    async def _refresh_desired(self) -> None:
        # The broker sends the retained document right after the first SUBACK; the second
        # SUBACK, on the same connection, comes after it, so the document is here by then.
        await self._subscribe([(self.topics.desired, 0)])
        await self._subscribe([(self.topics.method_filters[0], 0)])

    async def _subscribe(self, filters: list[tuple[str, int]]) -> None:
        options = [(f, SubscribeOptions(qos=qos)) for f, qos in filters]
        future: asyncio.Future[list[int]] = self._loop.create_future()
        await self._online.wait()
        rc, mid = self._client.subscribe(options)
        if rc != 0:
            raise HubError(f"cannot subscribe: not connected to the MQTT broker (rc {rc})")
        self._subscribes[mid] = future
        codes = await asyncio.wait_for(future, self.settings.connect_timeout_s)
        for (topic_filter, _), code in zip(filters, codes, strict=False):
            if code >= _FAILURE:
                raise HubError(
                    f"the MQTT broker refused the subscription to {topic_filter!r} for client "
                    f"{self.settings.client_id!r}: {reason_text(code, PacketTypes.SUBACK)}"
                )

    async def _publish(
        self, topic: str, body: bytes, properties: Any, what: str, *, retain: bool = False
    ) -> int:
        await self._online.wait()
        try:
            info = self._client.publish(topic, body, qos=1, retain=retain, properties=properties)
        except (OSError, ValueError) as e:
            raise HubError(f"publish to {what} failed: {e}") from e
        if info.rc not in (0, 4):  # 4: queued while disconnected, sent on reconnect
            raise HubError(f"publish to {what} failed: rc {info.rc}")
        future: asyncio.Future[int] = self._loop.create_future()
        self._publishes[info.mid] = future
        code = await future
        if code >= _FAILURE:
            error = f"the MQTT broker refused the message to {what} ({topic}): {reason_text(code)}"
            raise OutboundRejectedError(error) if code in (0x87, 0x90, 0x95) else HubError(error)
        return code

    # -- paho's thread -> module loop ------------------------------------------------------

    def _paho_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._to_loop(self._connected, code_of(reason))

    def _paho_disconnect(self, client: Any, userdata: Any, reason: Any, props: Any = None) -> None:
        self._to_loop(self._metrics.count, "hub_disconnects")

    def _paho_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._to_loop(self._received, message)

    def _paho_publish(self, client: BrokerClient, userdata: Any, mid: int) -> None:
        self._to_loop(self._published, mid, client.puback_reasons.pop(mid, 0))

    def _paho_subscribe(
        self, client: Any, userdata: Any, mid: int, reasons: list[Any], props: Any
    ) -> None:
        self._to_loop(self._subscribed, mid, [code_of(r) for r in reasons])

    def _to_loop(self, callback: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            self._loop.call_soon_threadsafe(callback, *args)

    # -- on the module loop ----------------------------------------------------------------

    def _connected(self, code: int) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(code)
        elif code < _FAILURE and self._up and not self._closed:
            # paho reconnected by itself: subscribe again (the desired document comes along).
            self._spawn(self._resubscribe(), "mqtt-resubscribe")

    async def _resubscribe(self) -> None:
        before = self._desired.doc["$version"]
        try:
            await self._subscribe_all()
        except (HubError, TimeoutError) as e:
            log.warning("could not subscribe again after a reconnect: %s", e)
            return
        if self._desired.doc["$version"] != before and self._desired_handler is not None:
            await self._desired_handler(dict(self._desired.doc))

    def _published(self, mid: int, code: int) -> None:
        future = self._publishes.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(code)

    def _subscribed(self, mid: int, codes: list[int]) -> None:
        future = self._subscribes.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(codes)

    def _received(self, message: Any) -> None:
        addressed = self.topics.classify(message.topic)
        if isinstance(addressed, Streamed) and message.qos > 0:
            frame = inbound(message, addressed.input_name, addressed.source)
            self._intake.take(frame, message.mid)
        elif isinstance(addressed, Streamed):
            # At QoS 0 the broker keeps nothing: a frame could be lost with no outcome and no
            # trace, against the contract (docs/mqtt.md). Refused loudly, counted.
            self._metrics.count("mqtt_frames_qos0_refused")
            if not self._warned_qos0:
                self._warned_qos0 = True
                log.warning(
                    "frames on %r were published at QoS 0 and are ignored: publish frames at QoS 1",
                    message.topic,
                )
        elif isinstance(addressed, DesiredSettings):
            self._take_desired(message.payload)
        elif isinstance(addressed, MethodRequest):
            self._spawn(self._answer(addressed.name, message), "mqtt-method")
        elif message.qos > 0:
            log.warning("message on unexpected topic %r: acknowledged and dropped", message.topic)
            self._acknowledge(message.mid)

    def _take_desired(self, payload: bytes) -> None:
        changed = self._desired.take(payload, self.topics.desired)
        if changed and self._up and self._desired_handler is not None:
            self._spawn(self._desired_handler(dict(self._desired.doc)), "mqtt-desired")

    async def _answer(self, name: str, request: Any) -> None:
        response_topic = response_topic_of(request)
        if response_topic is None:
            log.warning("method %r called without a response topic: not answered", name)
            return
        if self._methods_running >= MAX_METHODS_IN_FLIGHT:
            # Overflow policy: refuse the newest call (503, as IoT Hub answers a busy device)
            # rather than pile up inference work on the loop.
            status, body = 503, json.dumps({"message": "too many method calls in flight"}).encode()
        else:
            self._methods_running += 1
            try:
                status, body = await method_response(self._method_handler, name, request.payload)
            finally:
                self._methods_running -= 1
        properties = response_properties(correlation_of(request), status)
        try:
            await self._publish(response_topic, body, properties, f"the response to {name!r}")
        except HubError as e:
            log.warning("method %r answered, but the response was not delivered: %s", name, e)

    def _acknowledge(self, packet_id: int) -> None:
        if self._online.is_set():
            self._client.acknowledge(packet_id)
        else:  # sent once paho's thread runs again; the broker keeps the packet id meanwhile
            self._deferred_acks.append(packet_id)

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_open(self) -> None:
        if self._closed:
            raise HubError("the hub connection is closed")


def _stop(client: BrokerClient) -> None:
    client.disconnect()
    client.loop_stop()
    # After a refused CONNECT paho leaves its socket open; closed here, not by the collector.
    sock = client.socket()
    if sock is not None:
        sock.close()
