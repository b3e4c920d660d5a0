"""The one place the operator commands pick their transport: IoT Hub's service API, or an
MQTT v5 broker with ``--mqtt`` (docs/mqtt.md). Both answer the same three calls, so
``model push``, ``model status`` and ``invoke`` are written once.

On a broker, ``--device`` names the replica (its MQTT client id; ``any`` for a method call
that whichever replica takes), and the desired document is the module's, shared by all.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from cloud_tools.hub_service import HubService, add_hub_arguments


class ModuleService(Protocol):
    def module_twin(self, device: str, module: str) -> dict[str, Any]: ...

    def patch_desired(self, device: str, module: str, patch: dict[str, Any]) -> int: ...

    def invoke(
        self, device: str, module: str, method: str, payload: Any, timeout_s: int
    ) -> tuple[int, Any]: ...


def add_transport_arguments(parser: argparse.ArgumentParser) -> None:
    from cloud_tools.broker_service import add_broker_arguments

    add_hub_arguments(parser)
    add_broker_arguments(parser)


def module_service(args: argparse.Namespace) -> ModuleService:
    if getattr(args, "mqtt", False):
        from cloud_tools.broker_service import BrokerService

        return BrokerService.from_args(args)
    return HubService.from_args(args)
