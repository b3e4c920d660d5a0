"""The ``Hub`` over azure-iot-device. The only file of the module that imports the SDK.

Threading: the SDK calls handlers on its own event loop in a daemon thread, and runs several
at once. Our handlers are coroutines that hand the work to the module's loop with
``call_soon_threadsafe`` as their first and only step: the SDK schedules coroutines on one loop
in arrival order, so frames reach the module in the order edgeHub sent them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from azure.iot.device import Message, MethodRequest, MethodResponse
from azure.iot.device import exceptions as sdk_errors
from azure.iot.device.aio import IoTHubModuleClient

from classifier.errors import HubError
from classifier.hub import (
    DesiredHandler,
    InboundMessage,
    MessageHandler,
    MethodHandler,
    MethodResult,
    OutboundMessage,
)

log = logging.getLogger(__name__)


class SdkHub:
    def __init__(self, client: IoTHubModuleClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._message_handler: MessageHandler | None = None
        self._desired_handler: DesiredHandler | None = None
        self._method_handler: MethodHandler | None = None
        self._intake: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self._intake_task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_edge_environment(cls) -> SdkHub:
        """Inside IoT Edge (IOTEDGE_* variables and the workload API), or in development with
        ``EdgeHubConnectionString`` and ``EdgeModuleCACertificateFile``: the SDK picks."""
        try:
            client = IoTHubModuleClient.create_from_edge_environment()
        except (OSError, ValueError, sdk_errors.ClientError) as e:
            raise HubError(f"cannot create the module client from the edge environment: {e}") from e
        return cls(client, asyncio.get_running_loop())

    async def connect(self) -> None:
        # The first setter connects. The desired one must not be first: the SDK would then
        # GET the twin on that connect, before twin responses are subscribed, and that GET,
        # never answered, blocks the SDK's GET after every later reconnect.
        self._client.on_message_received = self._on_sdk_message
        self._client.on_twin_desired_properties_patch_received = self._on_sdk_desired
        self._client.on_method_request_received = self._on_sdk_method
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
        except (ValueError, sdk_errors.ClientError) as e:
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
        if self._intake_task is not None:
            self._intake_task.cancel()
            await asyncio.gather(self._intake_task, return_exceptions=True)

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
            properties=dict(message.custom_properties or {}),
        )
        self._loop.call_soon_threadsafe(self._intake.put_nowait, inbound)

    async def _dispatch_messages(self) -> None:
        # One consumer keeps arrival order; a handler that waits (overflow policy "block")
        # holds back the following messages instead of reordering them.
        while True:
            message = await self._intake.get()
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


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return b""
