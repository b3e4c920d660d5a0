"""The ``Hub`` over azure-iot-device. The only file of any module that imports the SDK.

Threading: the SDK calls handlers on its own event loop in a daemon thread, and runs several
at once. Our handlers are coroutines that hand the work to the module's loop as their first
and only step: the SDK schedules coroutines on one loop in arrival order, so frames reach the
module in the order edgeHub sent them.

Flow control: the SDK acknowledges (PUBACKs) an input message as paho reads it, before any
handler runs, and queues it in an unbounded inbox; waiting in a handler therefore only moves
the pile into the SDK, and blocking paho's thread would also stop the PUBACKs our own sends
wait for. So the intake queue here is bounded (``intake_capacity``), and when it is half full
the adapter stops receiving: it clears the SDK's message handler, which unsubscribes from the
module's inputs, and edgeHub keeps the messages (as it does for a module that has not
subscribed yet) until the queue has drained to a quarter and the handler is set again. Only
what edgeHub had already sent arrives meanwhile; those handlers wait for room, holding their
message, so none is lost and the module's memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from azure.iot.device import Message, MethodRequest, MethodResponse
from azure.iot.device import exceptions as sdk_errors
from azure.iot.device.aio import IoTHubModuleClient

from edge_module.counting import Counting, Counts
from edge_module.errors import HubError, OutboundRejectedError
from edge_module.hub import (
    DesiredHandler,
    InboundMessage,
    MessageHandler,
    MethodHandler,
    MethodResult,
    OutboundMessage,
)

log = logging.getLogger(__name__)


class SdkHub:
    def __init__(
        self,
        client: IoTHubModuleClient,
        loop: asyncio.AbstractEventLoop,
        intake_capacity: int = 32,
        metrics: Counting | None = None,
        new_client: Callable[[], IoTHubModuleClient] | None = None,
    ) -> None:
        self._client = client
        self._new_client = new_client  # for renew(); None: this hub cannot renew
        self._loop = loop
        self._message_handler: MessageHandler | None = None
        self._desired_handler: DesiredHandler | None = None
        self._method_handler: MethodHandler | None = None
        # Overflow policy "stop receiving" (see the module doc): full, arrivals wait for room.
        self._intake: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=intake_capacity)
        self._admission = asyncio.Lock()
        self._pause_at = max(2, intake_capacity // 2)
        self._resume_at = intake_capacity // 4
        self._receiving = True  # the wanted state; _flow_task makes the SDK follow it
        self._sdk_receiving = True  # the state the SDK was last put in
        self._flow_task: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[None]] = set()
        self._intake_task: asyncio.Task[None] | None = None
        self._closed = False
        self.intake_pauses = 0
        self.intake_peak = 0
        self._metrics: Counting = metrics or Counts()

    @classmethod
    def from_edge_environment(
        cls, intake_capacity: int = 32, sas_token_ttl_s: int = 3600, metrics: Counting | None = None
    ) -> SdkHub:
        """Inside IoT Edge (IOTEDGE_* variables and the workload API), or in development with
        ``EdgeHubConnectionString`` and ``EdgeModuleCACertificateFile``: the SDK picks."""

        def new_client() -> IoTHubModuleClient:
            try:
                return IoTHubModuleClient.create_from_edge_environment(sastoken_ttl=sas_token_ttl_s)
            except (OSError, ValueError, TypeError, sdk_errors.ClientError) as e:
                raise HubError(
                    f"cannot create the module client from the edge environment: {e}"
                ) from e

        return cls(new_client(), asyncio.get_running_loop(), intake_capacity, metrics, new_client)

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        # The first setter connects. The desired one must not be first: the SDK would then
        # GET the twin on that connect, before twin responses are subscribed, and that GET,
        # never answered, blocks the SDK's GET after every later reconnect.
        self._set_handlers(self._client)
        self._intake_task = asyncio.create_task(self._dispatch_messages(), name="hub-intake")
        try:
            await self._client.connect()
            # After each reconnect the SDK GETs the twin and hands a changed desired document
            # to the handler, but only get_twin() subscribes to twin responses, and edgeHub
            # answers a GET only on that subscription: without this one, desired changes made
            # while the module was disconnected would never arrive.
            await self._client.get_twin()
        except sdk_errors.ClientError as e:
            raise HubError(f"cannot connect to edgeHub: {e}") from e

    async def renew(self) -> None:
        """Replaces the SDK client with a new one on a new connection.

        Why: paho 1.6.1's network thread dies on an ``SSLEOFError`` while writing (edgeHub
        closing the TLS connection under a send), and the SDK, never told, keeps reporting
        "connected" while every send and twin call waits for ever. Its own reconnect logic
        never runs then, so the wedge watchdog asks for this. The session is persistent, so
        edgeHub resumes it on the new connection (and resends what was not acknowledged);
        calls stuck on the old client time out and are retried by their callers.
        """
        self._check_open()
        if self._new_client is None:
            raise HubError("this hub was built without a way to create a new client")
        new = self._new_client()
        try:
            # Setters block until edgeHub acknowledges: off the loop, in a daemon thread.
            await _in_daemon_thread(functools.partial(self._set_handlers, new))
            await new.connect()
            await new.get_twin()  # subscribes to twin responses (see connect)
        except BaseException as e:
            self._abandon(new)  # the old client stays: the watchdog's window still runs
            if isinstance(e, sdk_errors.ClientError):
                raise HubError(f"cannot connect a new client to edgeHub: {e}") from e
            raise
        old, self._client = self._client, new
        self._abandon(old)
        self._sdk_receiving = True
        if not self._receiving:  # the intake was paused: pause the new client too
            self._set_receiving(False)
        self._metrics.count("hub_renewals")

    def _set_handlers(self, client: IoTHubModuleClient) -> None:
        client.on_message_received = self._on_sdk_message
        client.on_twin_desired_properties_patch_received = self._on_sdk_desired
        client.on_method_request_received = self._on_sdk_method

    def _abandon(self, client: IoTHubModuleClient) -> None:
        # Its threads may be stuck; shutting it down is best effort and never awaited.
        async def shut_down() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(client.shutdown()), 30)

        task = asyncio.create_task(shut_down(), name="hub-abandoned-client")
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def send(self, output: str, message: OutboundMessage) -> None:
        self._check_open()
        sdk_message = Message(
            message.body,
            message_id=message.message_id,
            content_encoding=message.content_encoding,
            content_type=message.content_type,
        )
        sdk_message.correlation_id = message.correlation_id
        sdk_message.custom_properties = dict(message.properties)
        try:
            await self._client.send_message_to_output(sdk_message, output)
        except (ValueError, TypeError, UnicodeError) as e:
            # The SDK's size check, or properties that cannot go into a topic.
            raise OutboundRejectedError(f"output {output!r} refused the message: {e}") from e
        except sdk_errors.ClientError as e:
            raise HubError(f"send to output {output!r} failed: {e}") from e

    def on_message(self, handler: MessageHandler) -> None:
        self._message_handler = handler

    def on_desired_properties(self, handler: DesiredHandler) -> None:
        self._desired_handler = handler

    def on_method(self, handler: MethodHandler) -> None:
        self._method_handler = handler

    async def get_desired_properties(self) -> dict[str, Any]:
        self._check_open()
        try:
            twin = await self._client.get_twin()
        except sdk_errors.ClientError as e:
            raise HubError(f"twin GET failed: {e}") from e
        desired: dict[str, Any] = twin.get("desired", {})
        return desired

    async def report(self, patch: dict[str, Any]) -> None:
        self._check_open()
        try:
            await self._client.patch_twin_reported_properties(patch)
        except sdk_errors.ClientError as e:
            raise HubError(f"reported properties patch failed: {e}") from e

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._client.shutdown()
        except sdk_errors.ClientError as e:
            log.warning("module client shutdown: %s", e)
        tasks = [t for t in (self._intake_task, self._flow_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _check_open(self) -> None:
        # A shut-down SDK client raises its internal PipelineNotRunning, outside its own
        # exception tree, so a closed hub refuses before reaching it.
        if self._closed:
            raise HubError("the hub connection is closed")

    # -- SDK threads -> module loop -------------------------------------------------------

    async def _on_sdk_message(self, message: Message) -> None:
        inbound = InboundMessage(
            input_name=message.input_name or "",
            body=_as_bytes(message.data),
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            properties={str(k): str(v) for k, v in (message.custom_properties or {}).items()},
        )
        # Waits (on the SDK's handler loop, never paho's thread) while the intake is full.
        admitted = asyncio.run_coroutine_threadsafe(self._admit(inbound), self._loop)
        await asyncio.wrap_future(admitted)

    async def _admit(self, inbound: InboundMessage) -> None:
        # asyncio.Queue lets a new put past putters it has just woken; the lock queues them
        # strictly in arrival order, so no message overtakes one that waits for room.
        async with self._admission:
            await self._intake.put(inbound)
        depth = self._intake.qsize()
        self.intake_peak = max(self.intake_peak, depth)
        if self._receiving and depth >= self._pause_at:
            self._set_receiving(False)

    def _set_receiving(self, receiving: bool) -> None:
        self._receiving = receiving
        if self._flow_task is None or self._flow_task.done():
            self._flow_task = asyncio.create_task(self._follow_flow(), name="hub-flow")

    async def _follow_flow(self) -> None:
        retry_s = 0.5
        while self._sdk_receiving != self._receiving and not self._closed:
            wanted = self._receiving
            handler = self._on_sdk_message if wanted else None
            try:
                # The setter blocks until edgeHub acknowledges the (un)subscription.
                await _in_daemon_thread(functools.partial(self._set_sdk_handler, handler))
            except Exception as e:  # e.g. the connection dropped meanwhile: try again
                log.warning("could not %s receiving: %r", "resume" if wanted else "pause", e)
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, 10.0)
                continue
            self._sdk_receiving = wanted
            if not wanted:
                self.intake_pauses += 1
                self._metrics.count("intake_pauses")
            log.info(
                "%s receiving frames (%d queued)",
                "resumed" if wanted else "paused",
                self._intake.qsize(),
            )

    def _set_sdk_handler(self, handler: Callable[[Message], Any] | None) -> None:
        # None removes the handler and unsubscribes (the SDK's documented way); its hints
        # leave None out.
        self._client.on_message_received = handler  # type: ignore[assignment]

    async def _dispatch_messages(self) -> None:
        # One consumer keeps arrival order; a handler that waits (overflow policy "block")
        # holds back the following messages instead of reordering them.
        while True:
            message = await self._intake.get()
            if not self._receiving and self._intake.qsize() <= self._resume_at:
                self._set_receiving(True)
            if self._message_handler is None:
                log.warning("message on input %r before a handler was set", message.input_name)
                continue
            try:
                await self._message_handler(message)
            except Exception:
                log.exception("message handler failed on input %r", message.input_name)

    async def _on_sdk_desired(self, patch: dict[str, Any]) -> None:
        handler = self._desired_handler
        if handler is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(handler(patch), self._loop))

    async def _on_sdk_method(self, request: MethodRequest) -> None:
        handler = self._method_handler
        if handler is None:
            result = MethodResult(501, {"error": f"method {request.name!r} is not implemented"})
        else:
            call = handler(request.name, request.payload)
            try:
                result = await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(call, self._loop)
                )
            except Exception as e:
                log.exception("method %s failed", request.name)
                result = MethodResult(500, {"error": str(e)})
        response = MethodResponse.create_from_method_request(request, result.status, result.payload)
        await self._client.send_method_response(response)


def _in_daemon_thread(call: Callable[[], None]) -> asyncio.Future[None]:
    """Runs a blocking SDK call off the loop in a daemon thread: unlike the default executor,
    a call stuck on a wedged connection cannot keep the process from exiting."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def work() -> None:
        error: BaseException | None = None
        try:
            call()
        except BaseException as e:  # handed to the waiting coroutine
            error = e
        # The loop may have closed meanwhile: then nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=work, name="hub-flow-call", daemon=True).start()
    return done


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return b""
