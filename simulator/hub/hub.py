"""The simulated IoT Hub as a running service: its state and the HTTPS service API.

The service API's address and port are part of the connection string tools save, so the hub
remembers them: without an explicit port it listens where it listened last time, and only a
state directory that never ran picks a free port. A remembered port that is taken now is an
error that says so (pass a port, or 0 for any).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from simulator.errors import SimulatorError
from simulator.hub.service_api import ServiceApi
from simulator.hub.state import HubState

log = logging.getLogger(__name__)

DEFAULT_HOST_NAME = "simulated-hub.azure-devices.net"
_SERVICE_META = "service"


@dataclass(frozen=True)
class ServiceEndpoint:
    address: str
    port: int | None = None  # None: where it listened last time (any free port the first time)


class Hub:
    """``__init__`` only assigns; use :meth:`start`."""

    def __init__(self, state: HubState, service_api: ServiceApi) -> None:
        self.state = state
        self.service_api = service_api

    @classmethod
    async def start(
        cls, state: HubState, endpoint: ServiceEndpoint, ssl_context: ssl.SSLContext
    ) -> Hub:
        """Serve ``state`` (the hub then owns it and closes it on :meth:`stop`)."""
        saved = state.database.meta(_SERVICE_META) or {}
        remembered = saved.get("port") if saved.get("address") == endpoint.address else None
        if not isinstance(remembered, int):
            remembered = None
        port = endpoint.port if endpoint.port is not None else remembered
        service_api = ServiceApi(state)
        try:
            await service_api.start(endpoint.address, ssl_context, int(port or 0))
        except OSError as e:
            if endpoint.port is None and remembered:
                raise SimulatorError(
                    f"the service API's port {remembered} on {endpoint.address} (where it "
                    f"listened last time, so saved connection strings work) is taken: {e}; "
                    "pass a service port, or 0 for any free one"
                ) from e
            raise
        state.database.set_meta(
            _SERVICE_META, {"address": endpoint.address, "port": service_api.port}
        )
        return cls(state, service_api)

    async def stop(self) -> None:
        try:
            await self.service_api.stop()
        finally:
            self.state.close()

    @property
    def host_name(self) -> str:
        """What modules, tools and SAS tokens call the hub: the service API's ``host:port``."""
        return self.state.registry.host_name

    def connection_string(self) -> str:
        """The service connection string (``HostName`` is where the service API listens)."""
        return self.service_api.connection_string()
