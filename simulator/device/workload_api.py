"""The IoT Edge workload API, the part ``IoTHubModuleClient.create_from_edge_environment`` uses.

* ``GET /trust-bundle?api-version=V`` -> ``{"certificate": "<CA PEM>"}``
* ``POST /modules/{m}/genid/{g}/sign?api-version=V`` with
  ``{"keyId": "primary", "algo": "HMACSHA256", "data": "<base64>"}`` -> ``{"digest": "<base64>"}``

Served on a unix socket (what ``IOTEDGE_WORKLOADURI=unix://...`` points at) and/or a loopback
HTTP port. Like aziot-edged, an unknown module or a stale generation id is a 404 (a module
re-created under the same name must not sign with its predecessor's identity) and a bad
request body is a 400. Errors carry aziot-edged's ``{"message": ...}`` body.

Unlike aziot-edged, the caller's process is not checked against the module it signs for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from simulator.http_server import HttpServer
from simulator.hub.device_link import DeviceLink
from simulator.sas import sign_bytes

_KEY_IDS = ("primary", "secondary")
_MAX_SIGN_BYTES = 64 * 1024


class WorkloadApi:
    """``__init__`` only assigns; start listeners with :meth:`start_unix` / :meth:`start_tcp`."""

    def __init__(self, link: DeviceLink, trust_bundle: Callable[[], str]) -> None:
        self._link = link
        self._trust_bundle = trust_bundle
        self._server = HttpServer(self.build_app())

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_SIGN_BYTES * 2)
        app.router.add_get("/trust-bundle", self._get_trust_bundle)
        app.router.add_post("/modules/{module}/genid/{generation}/sign", self._sign)
        return app

    async def start_unix(self, path: Path) -> str:
        """Listen on ``path``; returns the ``IOTEDGE_WORKLOADURI`` value for it."""
        await self._server.start_unix(path)
        # Modules run as users of their own (an image's non-root user): like aziot-edged's
        # workload socket, this one is open to every user of the device.
        path.chmod(0o666)
        return f"unix://{path}"

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        bound = await self._server.start_tcp(host, port)
        return f"http://{host}:{bound}/"

    async def stop(self) -> None:
        await self._server.stop()

    async def _get_trust_bundle(self, request: web.Request) -> web.Response:
        _require_api_version(request)
        return web.json_response({"certificate": self._trust_bundle()})

    async def _sign(self, request: web.Request) -> web.Response:
        _require_api_version(request)
        module_id = request.match_info["module"]
        module = self._link.module(module_id)
        if module is None:
            raise _error(web.HTTPNotFound, f"module {module_id!r} not found")
        if request.match_info["generation"] != module.generation_id:
            raise _error(web.HTTPNotFound, f"module {module_id!r} has another generation id")
        try:
            body = json.loads(await request.text())
        except ValueError:
            raise _error(web.HTTPBadRequest, "request body is not JSON") from None
        if not isinstance(body, dict):
            raise _error(web.HTTPBadRequest, "request body must be a JSON object")
        key_id, algo, data = body.get("keyId"), body.get("algo"), body.get("data")
        if key_id not in _KEY_IDS:
            raise _error(web.HTTPBadRequest, "keyId must be 'primary' or 'secondary'")
        if algo != "HMACSHA256":
            raise _error(web.HTTPBadRequest, "algo must be 'HMACSHA256'")
        if not isinstance(data, str):
            raise _error(web.HTTPBadRequest, "data must be a base64 string")
        try:
            message = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _error(web.HTTPBadRequest, "data is not base64") from None
        key = module.primary_key if key_id == "primary" else module.secondary_key
        return web.json_response({"digest": sign_bytes(key, message)})


def _require_api_version(request: web.Request) -> None:
    if not request.query.get("api-version"):
        raise _error(web.HTTPBadRequest, "the api-version query parameter is required")


def _error(kind: type[web.HTTPError], message: str) -> web.HTTPError:
    return kind(text=json.dumps({"message": message}), content_type="application/json")
