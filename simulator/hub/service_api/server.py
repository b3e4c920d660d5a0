"""The service API's listener: HTTPS on loopback, SAS authentication, IoT Hub's errors.

Every request must carry a service SAS token signed with a policy key; the token's resource
must be one of the names this hub answers to. Errors use IoT Hub's body shape,
``{"Message": "ErrorCode:<code>;<text>", "ExceptionMessage": "..."}``, plus the
``iothub-errorcode`` header, so SDK callers see realistic ``HttpOperationError``s.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from simulator.errors import HubError, SasTokenError
from simulator.http_server import HttpServer
from simulator.hub.service_api import configurations, identities, twins
from simulator.hub.service_api.bodies import error_response
from simulator.hub.state import HubState
from simulator.sas import verify_service_token

log = logging.getLogger(__name__)


class ServiceApi:
    """``__init__`` only assigns; :meth:`start` binds the HTTPS listener."""

    def __init__(self, state: HubState, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        self._server = HttpServer(self.build_app())
        self.host_name: str | None = None

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authenticate])
        identities.add_routes(app, self._state)
        twins.add_routes(app, self._state)
        configurations.add_routes(app, self._state)
        return app

    async def start(self, host: str, ssl_context: ssl.SSLContext, port: int = 0) -> str:
        """Listen on ``host:port``; returns the ``HostName`` a service client must use."""
        bound = await self._server.start_tcp(host, port, ssl_context)
        self.host_name = f"{host}:{bound}"
        # The SDK signs its connection string's HostName verbatim, port included; it becomes
        # the hub's one name, for module connection strings too.
        self._state.registry.serve_as(self.host_name)
        return self.host_name

    @property
    def port(self) -> int:
        if self.host_name is None:
            raise RuntimeError("the service API is not listening yet")
        return int(self.host_name.rsplit(":", 1)[1])

    async def stop(self) -> None:
        await self._server.stop()

    def connection_string(self) -> str:
        if self.host_name is None:
            raise RuntimeError("the service API is not listening yet")
        return self._state.registry.service_connection_string(self.host_name)

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
                hub_hosts=self._state.registry.host_names,
                policy_keys=self._state.registry.policy_keys,
                now=self._clock(),
            )
        except SasTokenError as e:
            raise HubError(401, "IotHubUnauthorizedAccess", e.reason) from e
        if "api-version" not in request.query:
            raise HubError(400, "ArgumentNull", "the api-version query parameter is required")
        response: web.StreamResponse = await handler(request)
        return response
