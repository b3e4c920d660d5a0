"""Routes: device identities and module identities.

``PUT /devices/{id}`` creates a device, or updates one when the request carries ``If-Match``
(the SDK's ``update_device_with_sas``); an existing id without it is 409, as on IoT Hub. The
same holds for module identities. Only SAS authentication is simulated: keys may be given
(base64, 16 to 64 bytes) or are generated.
"""

from __future__ import annotations

from aiohttp import web

from simulator.errors import HubError
from simulator.hub.identity import DeviceFields, ModuleFields
from simulator.hub.service_api.bodies import json_object, optional_string
from simulator.hub.state import HubState
from simulator.jsondoc import JsonObject, is_object

MAX_LIST = 1000


def add_routes(app: web.Application, state: HubState) -> None:
    routes = _IdentityRoutes(state)
    app.router.add_get("/devices", routes.list_devices)
    app.router.add_get("/devices/{device}", routes.get_device)
    app.router.add_put("/devices/{device}", routes.put_device)
    app.router.add_delete("/devices/{device}", routes.delete_device)
    app.router.add_get("/devices/{device}/modules", routes.list_modules)
    app.router.add_get("/devices/{device}/modules/{module}", routes.get_module)
    app.router.add_put("/devices/{device}/modules/{module}", routes.put_module)
    app.router.add_delete("/devices/{device}/modules/{module}", routes.delete_module)


class _IdentityRoutes:
    def __init__(self, state: HubState) -> None:
        self._state = state

    # -- devices ---------------------------------------------------------------------------

    async def list_devices(self, request: web.Request) -> web.Response:
        top = request.query.get("top")
        limit = int(top) if top and top.isdigit() else MAX_LIST
        limit = limit if 1 <= limit <= MAX_LIST else MAX_LIST
        devices = self._state.registry.devices()[:limit]
        return web.json_response([self._state.documents.device_identity(d) for d in devices])

    async def get_device(self, request: web.Request) -> web.Response:
        device = self._state.registry.require_device(request.match_info["device"])
        return web.json_response(self._state.documents.device_identity(device))

    async def put_device(self, request: web.Request) -> web.Response:
        device_id = request.match_info["device"]
        body = await json_object(request)
        _check_id_matches(body, "deviceId", device_id)
        primary, secondary = _sas_keys(body)
        fields = DeviceFields(
            edge=_edge_capability(body),
            status=optional_string(body, "status") or "enabled",
            status_reason=optional_string(body, "statusReason"),
            primary_key=primary,
            secondary_key=secondary,
        )
        if_match = request.headers.get("If-Match")
        if self._state.registry.get_device(device_id) is not None and if_match is not None:
            device = self._state.update_device(device_id, fields, if_match=if_match)
        else:
            device = self._state.create_device(device_id, fields)
        return web.json_response(self._state.documents.device_identity(device))

    async def delete_device(self, request: web.Request) -> web.Response:
        self._state.delete_device(
            request.match_info["device"], if_match=request.headers.get("If-Match")
        )
        return web.Response(status=204)

    # -- modules ---------------------------------------------------------------------------

    async def list_modules(self, request: web.Request) -> web.Response:
        device = self._state.registry.require_device(request.match_info["device"])
        modules = self._state.registry.modules(device.device_id)
        return web.json_response([self._state.documents.module_identity(m) for m in modules])

    async def get_module(self, request: web.Request) -> web.Response:
        device = self._state.registry.require_device(request.match_info["device"])
        module = self._state.registry.require_module(device.device_id, request.match_info["module"])
        return web.json_response(self._state.documents.module_identity(module))

    async def put_module(self, request: web.Request) -> web.Response:
        device = self._state.registry.require_device(request.match_info["device"])
        module_id = request.match_info["module"]
        body = await json_object(request)
        _check_id_matches(body, "deviceId", device.device_id)
        _check_id_matches(body, "moduleId", module_id)
        primary, secondary = _sas_keys(body)
        fields = ModuleFields(optional_string(body, "managedBy"), primary, secondary)
        if_match = request.headers.get("If-Match")
        registry = self._state.registry
        if registry.get_module(device.device_id, module_id) is not None and if_match is not None:
            module = registry.update_module(device.device_id, module_id, fields, if_match=if_match)
        else:
            module = self._state.create_module(device.device_id, module_id, fields)
        return web.json_response(self._state.documents.module_identity(module))

    async def delete_module(self, request: web.Request) -> web.Response:
        self._state.delete_module(
            request.match_info["device"],
            request.match_info["module"],
            if_match=request.headers.get("If-Match"),
        )
        return web.Response(status=204)


def _check_id_matches(body: JsonObject, key: str, expected: str) -> None:
    given = body.get(key)
    if given not in (None, expected):
        raise HubError(400, "ArgumentInvalid", f"the body's {key} {given!r} is not the URL's")


def _sas_keys(body: JsonObject) -> tuple[str | None, str | None]:
    authentication = body.get("authentication")
    if authentication is None:
        return None, None
    if not is_object(authentication):
        raise HubError(400, "ArgumentInvalid", "authentication must be an object")
    kind = authentication.get("type") or "sas"
    if kind != "sas":
        raise HubError(400, "ArgumentInvalid", f"authentication {kind!r}: only sas is simulated")
    keys = authentication.get("symmetricKey")
    if keys is None:
        return None, None
    if not is_object(keys):
        raise HubError(400, "ArgumentInvalid", "authentication.symmetricKey must be an object")
    return optional_string(keys, "primaryKey"), optional_string(keys, "secondaryKey")


def _edge_capability(body: JsonObject) -> bool:
    capabilities = body.get("capabilities")
    if capabilities is None:
        return False
    if not is_object(capabilities):
        raise HubError(400, "ArgumentInvalid", "capabilities must be an object")
    edge = capabilities.get("iotEdge", False)
    if not isinstance(edge, bool):
        raise HubError(400, "ArgumentInvalid", "capabilities.iotEdge must be true or false")
    return edge
