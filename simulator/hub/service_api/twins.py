"""Routes: device twins, module twins, direct methods on modules, twin queries.

Twins: ``GET``, ``PATCH`` (merge tags and desired properties) and ``PUT`` (replace them) with
``If-Match``. Changing a device twin's tags re-evaluates which deployments target it.
Queries page with ``x-ms-max-item-count`` and ``x-ms-continuation`` as IoT Hub's do.
"""

from __future__ import annotations

from aiohttp import web

from simulator.errors import HubError
from simulator.hub.service_api.bodies import continuation, json_object, page_size, seconds
from simulator.hub.state import HubState
from simulator.hub.twins import DEVICE_TWIN


def add_routes(app: web.Application, state: HubState) -> None:
    routes = _TwinRoutes(state)
    for path in ("/twins/{device}", "/twins/{device}/modules/{module}"):
        app.router.add_get(path, routes.get_twin)
        app.router.add_patch(path, routes.patch_twin)
        app.router.add_put(path, routes.put_twin)
    app.router.add_post("/twins/{device}/modules/{module}/methods", routes.invoke_method)
    app.router.add_post("/devices/query", routes.query)


def _twin_key(request: web.Request) -> tuple[str, str]:
    return request.match_info["device"], request.match_info.get("module", DEVICE_TWIN)


class _TwinRoutes:
    def __init__(self, state: HubState) -> None:
        self._state = state

    async def get_twin(self, request: web.Request) -> web.Response:
        return web.json_response(self._state.twin_document(*_twin_key(request)))

    async def patch_twin(self, request: web.Request) -> web.Response:
        return await self._change(request, replace=False)

    async def put_twin(self, request: web.Request) -> web.Response:
        return await self._change(request, replace=True)

    async def _change(self, request: web.Request, *, replace: bool) -> web.Response:
        body = await json_object(request)
        twin = self._state.update_twin(
            *_twin_key(request), body, if_match=request.headers.get("If-Match"), replace=replace
        )
        return web.json_response(twin)

    async def invoke_method(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        name = body.get("methodName")
        if not isinstance(name, str):
            raise HubError(400, "ArgumentInvalid", "methodName must be a string")
        device_id, module_id = _twin_key(request)
        result = await self._state.invoke_method(
            device_id,
            module_id,
            name,
            body.get("payload"),
            response_timeout_s=seconds(body, "responseTimeoutInSeconds", 30),
            connect_timeout_s=seconds(body, "connectTimeoutInSeconds", 0),
        )
        return web.json_response({"status": result.status, "payload": result.payload})

    async def query(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        text = body.get("query")
        if not isinstance(text, str):
            raise HubError(400, "ArgumentInvalid", "query must be a string")
        documents = self._state.query(text)
        start = continuation(request.headers.get("x-ms-continuation"))
        size = page_size(request.headers.get("x-ms-max-item-count"))
        page = documents[start : start + size]
        headers = {"x-ms-item-type": "twin"}
        if start + size < len(documents):
            headers["x-ms-continuation"] = str(start + size)
        return web.json_response(page, headers=headers)
