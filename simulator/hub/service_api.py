"""IoT Hub's service REST API, enough for azure-iot-hub 2.7.0 to work unmodified.

Registry manager: module twins (GET/PATCH/PUT with ``If-Match``), module methods, module
identities, twin queries. Configuration manager: configurations CRUD and list, and
``applyConfigurationContent`` (which sets the module twins' desired properties, then tells
the runtime through ``on_apply_content`` so it can reconcile).

Every request must carry a service SAS token signed with a policy key; the token's resource
must be one of the names this hub answers to. Errors use IoT Hub's body shape,
``{"Message": "ErrorCode:<code>;<text>", "ExceptionMessage": "..."}``, plus the
``iothub-errorcode`` header, so SDK callers see realistic ``HttpOperationError``s.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator.errors import HubError, QuerySyntaxError, SasTokenError
from simulator.http_server import HttpServer
from simulator.hub.configurations import ConfigurationStore
from simulator.hub.registry import ModuleIdentity, Registry
from simulator.hub.twins import TwinStore
from simulator.jsondoc import JsonObject, JsonValue, is_object
from simulator.methods import MethodDispatcher
from simulator.query import matches, parse_twin_query, resolve_in_document
from simulator.sas import verify_service_token

log = logging.getLogger(__name__)

ApplyContentCallback = Callable[[str, JsonObject], Awaitable[None]]
ConnectionProbe = Callable[[str, str], bool]
_DEFAULT_PAGE = 100
_MAX_PAGE = 1000
_REQUIRED_EDGE_MODULES = ("$edgeAgent", "$edgeHub")


class ServiceApi:
    """``__init__`` only assigns; :meth:`start` binds the HTTPS listener."""

    def __init__(
        self,
        registry: Registry,
        twins: TwinStore,
        configurations: ConfigurationStore,
        methods: MethodDispatcher,
        *,
        on_apply_content: ApplyContentCallback | None = None,
        is_connected: ConnectionProbe | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._twins = twins
        self._configurations = configurations
        self._methods = methods
        self._on_apply_content = on_apply_content
        self._is_connected = is_connected or (lambda _d, _m: False)
        self._clock = clock
        self._hosts = {registry.hub_host_name.lower()}
        self._server = HttpServer(self.build_app())
        self.host_name: str | None = None

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authenticate])
        app.router.add_get("/twins/{device}/modules/{module}", self._get_twin)
        app.router.add_patch("/twins/{device}/modules/{module}", self._update_twin)
        app.router.add_put("/twins/{device}/modules/{module}", self._replace_twin)
        app.router.add_post("/twins/{device}/modules/{module}/methods", self._invoke_method)
        app.router.add_get("/devices/{device}/modules", self._list_modules)
        app.router.add_get("/devices/{device}/modules/{module}", self._get_module)
        app.router.add_post("/devices/query", self._query)
        app.router.add_post("/devices/{device}/applyConfigurationContent", self._apply_content)
        app.router.add_get("/configurations", self._list_configurations)
        app.router.add_get("/configurations/{id}", self._get_configuration)
        app.router.add_put("/configurations/{id}", self._put_configuration)
        app.router.add_delete("/configurations/{id}", self._delete_configuration)
        return app

    async def start(self, host: str, ssl_context: ssl.SSLContext, port: int = 0) -> str:
        """Listen on ``host:port``; returns the ``HostName`` a service client must use."""
        bound = await self._server.start_tcp(host, port, ssl_context)
        self.host_name = f"{host}:{bound}"
        # The SDK signs its connection string's HostName verbatim, port included.
        self._hosts.add(self.host_name.lower())
        return self.host_name

    async def stop(self) -> None:
        await self._server.stop()

    def connection_string(self) -> str:
        if self.host_name is None:
            raise RuntimeError("the service API is not listening yet")
        return self._registry.service_connection_string(self.host_name)

    # -- middleware ------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except HubError as e:
            return error_response(e.status, e.code, e.message)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return error_response(e.status, e.reason.replace(" ", ""), e.text or e.reason)
        except Exception:
            log.exception("service API %s %s failed", request.method, request.path)
            return error_response(500, "ServerError", "internal error in the simulator")

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = request.headers.get("Authorization", "")
        try:
            verify_service_token(
                token,
                hub_hosts=frozenset(self._hosts),
                policy_keys=self._registry.policy_keys,
                now=self._clock(),
            )
        except SasTokenError as e:
            raise HubError(401, "IotHubUnauthorizedAccess", e.reason) from e
        if "api-version" not in request.query:
            raise HubError(400, "ArgumentNull", "the api-version query parameter is required")
        response: web.StreamResponse = await handler(request)
        return response

    # -- twins -----------------------------------------------------------------------------

    def _module(self, request: web.Request) -> ModuleIdentity:
        device_id = request.match_info["device"]
        if self._registry.get_device(device_id) is None:
            raise HubError(404, "DeviceNotFound", f"device {device_id!r} does not exist")
        return self._registry.require_module(device_id, request.match_info["module"])

    def _twin_response(self, module: ModuleIdentity) -> web.Response:
        state = self._connection_state(module.device_id, module.module_id)
        twin = self._twins.get_for_service(
            module.device_id, module.module_id, connection_state=state
        )
        return web.json_response(twin)

    def _connection_state(self, device_id: str, module_id: str) -> str:
        return "Connected" if self._is_connected(device_id, module_id) else "Disconnected"

    async def _get_twin(self, request: web.Request) -> web.Response:
        return self._twin_response(self._module(request))

    async def _update_twin(self, request: web.Request) -> web.Response:
        module = self._module(request)
        body = await _json_object(request)
        properties = body.get("properties")
        desired = properties.get("desired") if is_object(properties) else None
        self._twins.update(
            module.device_id,
            module.module_id,
            desired_patch=desired,
            tags_patch=body.get("tags"),
            if_match=request.headers.get("If-Match"),
        )
        return self._twin_response(module)

    async def _replace_twin(self, request: web.Request) -> web.Response:
        module = self._module(request)
        body = await _json_object(request)
        properties = body.get("properties")
        desired = properties.get("desired") if is_object(properties) else None
        self._twins.replace(
            module.device_id,
            module.module_id,
            desired=desired or {},
            tags=body.get("tags") or {},
            if_match=request.headers.get("If-Match"),
        )
        return self._twin_response(module)

    # -- methods and identities ------------------------------------------------------------

    async def _invoke_method(self, request: web.Request) -> web.Response:
        module = self._module(request)
        body = await _json_object(request)
        name = body.get("methodName")
        if not isinstance(name, str):
            raise HubError(400, "ArgumentInvalid", "methodName must be a string")
        result = await self._methods.invoke(
            module.device_id,
            module.module_id,
            name,
            body.get("payload"),
            response_timeout_s=_seconds(body, "responseTimeoutInSeconds", 30),
            connect_timeout_s=_seconds(body, "connectTimeoutInSeconds", 0),
        )
        return web.json_response({"status": result.status, "payload": result.payload})

    def _module_json(self, module: ModuleIdentity) -> JsonObject:
        return {
            "moduleId": module.module_id,
            "deviceId": module.device_id,
            "managedBy": module.managed_by,
            "generationId": module.generation_id,
            "etag": module.etag,
            "connectionState": self._connection_state(module.device_id, module.module_id),
            "cloudToDeviceMessageCount": 0,
            "authentication": {
                "type": "sas",
                "symmetricKey": {
                    "primaryKey": module.primary_key,
                    "secondaryKey": module.secondary_key,
                },
                "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            },
        }

    async def _list_modules(self, request: web.Request) -> web.Response:
        device_id = request.match_info["device"]
        if self._registry.get_device(device_id) is None:
            raise HubError(404, "DeviceNotFound", f"device {device_id!r} does not exist")
        modules = self._registry.modules(device_id)
        return web.json_response([self._module_json(m) for m in modules])

    async def _get_module(self, request: web.Request) -> web.Response:
        return web.json_response(self._module_json(self._module(request)))

    # -- queries ---------------------------------------------------------------------------

    async def _query(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        text = body.get("query")
        if not isinstance(text, str):
            raise HubError(400, "ArgumentInvalid", "query must be a string")
        try:
            query = parse_twin_query(text)
        except QuerySyntaxError as e:
            raise HubError(400, "InvalidQuery", str(e)) from e
        documents = (
            self._module_documents()
            if query.collection == "devices.modules"
            else self._device_documents()
        )
        if query.condition is not None:
            condition = query.condition
            documents = [d for d in documents if matches(condition, resolve_in_document(d))]
        start = _continuation(request.headers.get("x-ms-continuation"))
        size = _page_size(request.headers.get("x-ms-max-item-count"))
        page = documents[start : start + size]
        headers = {"x-ms-item-type": "twin"}
        if start + size < len(documents):
            headers["x-ms-continuation"] = str(start + size)
        return web.json_response(page, headers=headers)

    def _module_documents(self) -> list[JsonObject]:
        return [
            self._twins.get_for_service(
                m.device_id,
                m.module_id,
                connection_state=self._connection_state(m.device_id, m.module_id),
            )
            for m in sorted(self._registry.modules(), key=lambda m: (m.device_id, m.module_id))
        ]

    def _device_documents(self) -> list[JsonObject]:
        # Device twins are not modelled; a minimal document lets targets such as
        # "capabilities.iotEdge = true" be queried.
        return [
            {
                "deviceId": d.device_id,
                "etag": d.etag,
                "status": "enabled",
                "connectionState": "Disconnected",
                "authenticationType": "sas",
                "version": 1,
                "tags": {},
                "capabilities": {"iotEdge": d.is_edge},
                "properties": {"desired": {"$version": 1}, "reported": {"$version": 1}},
            }
            for d in sorted(self._registry.devices(), key=lambda d: d.device_id)
        ]

    # -- configurations --------------------------------------------------------------------

    async def _apply_content(self, request: web.Request) -> web.Response:
        device_id = request.match_info["device"]
        device = self._registry.get_device(device_id)
        if device is None:
            raise HubError(404, "DeviceNotFound", f"device {device_id!r} does not exist")
        if not device.is_edge:
            raise HubError(400, "ArgumentInvalid", f"{device_id!r} is not an IoT Edge device")
        body = await _json_object(request)
        content = body.get("modulesContent")
        if not is_object(content):
            raise HubError(400, "ArgumentInvalid", "modulesContent must be a JSON object")
        missing = [m for m in _REQUIRED_EDGE_MODULES if m not in content]
        if missing:
            raise HubError(400, "ArgumentInvalid", f"modulesContent lacks {', '.join(missing)}")
        if self._on_apply_content is not None:
            # The owner validates the whole deployment first and applies the twins itself, so
            # a refused deployment (HubError 400) changes nothing.
            await self._on_apply_content(device_id, content)
        else:
            self._twins.apply_modules_content(device_id, content)
        return web.Response(status=204)

    async def _list_configurations(self, request: web.Request) -> web.Response:
        top = request.query.get("top")
        try:
            limit = int(top) if top is not None else None
        except ValueError:
            raise HubError(400, "ArgumentInvalid", "top must be an integer") from None
        return web.json_response(self._configurations.list(limit))

    async def _get_configuration(self, request: web.Request) -> web.Response:
        return web.json_response(self._configurations.get(request.match_info["id"]))

    async def _put_configuration(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        stored = self._configurations.put(
            request.match_info["id"], body, request.headers.get("If-Match")
        )
        return web.json_response(stored)

    async def _delete_configuration(self, request: web.Request) -> web.Response:
        self._configurations.delete(request.match_info["id"], request.headers.get("If-Match"))
        return web.Response(status=204)


def error_response(status: int, code: str, message: str) -> web.Response:
    """IoT Hub's error body; the tracking id lets a log line be matched to a response."""
    tracking = uuid.uuid4().hex
    stamp = dt.datetime.now(dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
    body = {
        "Message": f"ErrorCode:{code};{message}",
        "ExceptionMessage": f"Tracking ID:{tracking}-TimeStamp:{stamp}",
    }
    return web.json_response(body, status=status, headers={"iothub-errorcode": code})


def _reject_constant(name: str) -> JsonValue:
    raise ValueError(f"{name} is not JSON")


async def _json_object(request: web.Request) -> JsonObject:
    text = await request.text()
    try:
        value = json.loads(text, parse_constant=_reject_constant) if text.strip() else {}
    except ValueError as e:
        raise HubError(400, "ArgumentInvalid", f"the body is not valid JSON: {e}") from e
    if not is_object(value):
        raise HubError(400, "ArgumentInvalid", "the body must be a JSON object")
    return value


def _seconds(body: JsonObject, key: str, default: int) -> float:
    value = body.get(key)
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HubError(400, "ArgumentInvalid", f"{key} must be a number")
    return float(value)


def _continuation(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise HubError(400, "ArgumentInvalid", "invalid continuation token")
    return int(token)


def _page_size(header: str | None) -> int:
    if not header:
        return _DEFAULT_PAGE
    if not header.isdigit() or int(header) == 0:
        raise HubError(400, "ArgumentInvalid", "x-ms-max-item-count must be a positive integer")
    return min(int(header), _MAX_PAGE)
