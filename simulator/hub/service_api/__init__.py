"""IoT Hub's service REST API, enough for azure-iot-hub 2.7.0 to work unmodified.

    server.py          listener, SAS authentication, IoT Hub's error bodies
    identities.py      devices and module identities (create, read, update, delete, list)
    twins.py           device and module twins, direct methods, twin queries
    configurations.py  configurations (automatic deployments) and applyConfigurationContent

Each route module adds its routes to the app with ``add_routes(app, state)``; the handlers
parse and render, and ``HubState`` does the work.
"""

from simulator.hub.service_api.bodies import error_response
from simulator.hub.service_api.server import ServiceApi

__all__ = ["ServiceApi", "error_response"]
