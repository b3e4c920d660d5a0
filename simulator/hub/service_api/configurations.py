"""Routes: configurations (automatic deployments) and ``applyConfigurationContent``.

Configurations are returned with their metrics' current results. ``applyConfigurationContent``
answers 204 once the device's twins hold the deployment; the device's runtime reconciles from
there, as edgeAgent does, and reports the outcome in ``$edgeAgent``'s reported properties.
"""

from __future__ import annotations

from aiohttp import web

from simulator.errors import HubError
from simulator.hub.service_api.bodies import json_object
from simulator.hub.state import HubState
from simulator.jsondoc import is_object


def add_routes(app: web.Application, state: HubState) -> None:
    routes = _ConfigurationRoutes(state)
    app.router.add_post("/devices/{device}/applyConfigurationContent", routes.apply_content)
    app.router.add_get("/configurations", routes.list_configurations)
    app.router.add_get("/configurations/{id}", routes.get_configuration)
    app.router.add_put("/configurations/{id}", routes.put_configuration)
    app.router.add_delete("/configurations/{id}", routes.delete_configuration)


class _ConfigurationRoutes:
    def __init__(self, state: HubState) -> None:
        self._state = state

    async def apply_content(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        content = body.get("modulesContent")
        if not is_object(content):
            raise HubError(400, "ArgumentInvalid", "modulesContent must be a JSON object")
        self._state.apply_content(request.match_info["device"], content)
        return web.Response(status=204)

    async def list_configurations(self, request: web.Request) -> web.Response:
        top = request.query.get("top")
        try:
            limit = int(top) if top is not None else None
        except ValueError:
            raise HubError(400, "ArgumentInvalid", "top must be an integer") from None
        return web.json_response(self._state.list_configurations(limit))

    async def get_configuration(self, request: web.Request) -> web.Response:
        return web.json_response(self._state.configuration(request.match_info["id"]))

    async def put_configuration(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        stored = self._state.put_configuration(
            request.match_info["id"], body, request.headers.get("If-Match")
        )
        return web.json_response(stored)

    async def delete_configuration(self, request: web.Request) -> web.Response:
        self._state.delete_configuration(request.match_info["id"], request.headers.get("If-Match"))
        return web.Response(status=204)
