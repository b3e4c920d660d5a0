"""The hub's service side for the operator tools: azure-iot-hub's managers, from a connection
string given by ``--hub-connection-string`` or ``IOTHUB_CONNECTION_STRING``.

The service SDK is synchronous; the commands call it directly (they are command-line tools,
not servers). A custom CA (the simulator's) is trusted through ``REQUESTS_CA_BUNDLE``, which
``python -m simulator env`` sets.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from azure.iot.hub.models import (
    CloudToDeviceMethod,
    Configuration,
    ConfigurationContent,
    QuerySpecification,
    Twin,
    TwinProperties,
)

from cloud_tools.errors import USAGE, CliError

ENV_HUB = "IOTHUB_CONNECTION_STRING"


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hub-connection-string",
        help=f"the hub's service connection string (default: ${ENV_HUB}); never printed",
    )


def hub_connection_string(args: argparse.Namespace) -> str:
    value = getattr(args, "hub_connection_string", None) or os.environ.get(ENV_HUB)
    if not value:
        raise CliError(f"no hub connection string: set {ENV_HUB} or --hub-connection-string", USAGE)
    return str(value)


class HubService:
    """The few service calls the commands make, with SDK errors turned into ``CliError``."""

    def __init__(self, connection_string: str) -> None:
        try:
            self._registry = IoTHubRegistryManager.from_connection_string(connection_string)
            self._configurations = IoTHubConfigurationManager.from_connection_string(
                connection_string
            )
        except Exception as e:  # the SDK raises ValueError/KeyError for malformed strings
            raise CliError(f"the hub connection string is not usable: {e}", USAGE) from e

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HubService:
        return cls(hub_connection_string(args))

    def module_twin(self, device: str, module: str) -> dict[str, Any]:
        twin = self._call(self._registry.get_module_twin, device, module)
        props = twin.properties
        return {
            "desired": dict(props.desired or {}) if props else {},
            "reported": dict(props.reported or {}) if props else {},
            "etag": twin.etag,
        }

    def patch_desired(self, device: str, module: str, patch: dict[str, Any]) -> int:
        """Applies a desired-properties patch; returns the twin's new desired ``$version``."""
        twin = Twin(properties=TwinProperties(desired=patch))
        updated = self._call(self._registry.update_module_twin, device, module, twin, "*")
        desired = updated.properties.desired if updated.properties else None
        version = (desired or {}).get("$version")
        if not isinstance(version, int):
            raise CliError("the hub did not return the twin's new desired $version")
        return version

    def invoke(
        self, device: str, module: str, method: str, payload: Any, timeout_s: int
    ) -> tuple[int, Any]:
        request = CloudToDeviceMethod(
            method_name=method, payload=payload, response_timeout_in_seconds=timeout_s
        )
        result = self._call(self._registry.invoke_device_module_method, device, module, request)
        return int(result.status), result.payload

    def deploy(self, device: str, modules_content: dict[str, Any]) -> None:
        content = ConfigurationContent(modules_content=modules_content)
        self._call(self._configurations.apply_configuration_on_edge_device, device, content)

    # -- fleets: queries and automatic deployments -----------------------------------------

    def query(self, text: str) -> list[Twin]:
        """Every twin the query selects, following continuation tokens page by page."""
        twins: list[Twin] = []
        token: str | None = None
        while True:
            page = self._call(
                self._registry.query_iot_hub, QuerySpecification(query=text), token, _PAGE
            )
            twins.extend(page.items or [])
            token = page.continuation_token
            if not token:
                return twins

    def edge_devices(self, condition: str) -> list[Twin]:
        """Device twins of the IoT Edge devices ``condition`` targets (``*``: every one)."""
        where = "capabilities.iotEdge = true"
        if condition.strip() != "*":
            where += f" AND ({condition})"
        twins = self.query(f"SELECT * FROM devices WHERE {where}")
        return sorted(twins, key=lambda twin: str(twin.device_id))

    def module_twins(self, module: str, devices: list[str] | None = None) -> dict[str, Twin]:
        """``module``'s twins by device id (of ``devices`` only, when given)."""
        where = f"moduleId = {_quote(module)}"
        if devices is not None:
            if not devices:
                return {}
            where += f" AND deviceId IN [{', '.join(_quote(d) for d in devices)}]"
        twins = self.query(f"SELECT * FROM devices.modules WHERE {where}")
        return {str(twin.device_id): twin for twin in twins}

    def deployments(self) -> list[Configuration]:
        return list(self._call(self._configurations.get_configurations, _MAX_CONFIGURATIONS))

    def deployment(self, deployment_id: str) -> Configuration:
        return self._call(self._configurations.get_configuration, deployment_id)

    def create_deployment(self, configuration: Configuration) -> Configuration:
        return self._call(self._configurations.create_configuration, configuration)

    def update_deployment(self, configuration: Configuration) -> Configuration:
        """Labels, target condition, priority and metrics can change; content cannot."""
        return self._call(
            self._configurations.update_configuration, configuration, configuration.etag
        )

    def delete_deployment(self, deployment_id: str) -> None:
        self._call(self._configurations.delete_configuration, deployment_id)

    @staticmethod
    def _call(function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except Exception as e:  # msrest's HttpOperationError and friends
            raise CliError(f"the hub refused {function.__name__}: {_describe(e)}") from e


_PAGE = 100
_MAX_CONFIGURATIONS = 100


def _quote(value: str) -> str:
    """A string literal of the query language (a quote inside is escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _describe(error: Exception) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    text = getattr(response, "text", "") or str(error)
    return f"HTTP {status}: {text[:500]}" if status else text[:500]
