"""The one place a module's transport is chosen: ``HUB=edgehub`` (IoT Edge) or ``HUB=mqtt``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from edge_module.counting import Counting
from edge_module.hub import Hub
from edge_module.mqtt_settings import MqttSettings, hub_kind


def hub_from_environment(
    env: Mapping[str, str],
    intake_capacity: int = 32,
    sas_token_ttl_s: int = 3600,
    metrics: Counting | None = None,
) -> Hub:
    """Raises ``SettingsError`` naming every problem with the transport's variables."""
    # Each transport's client library is imported only where it is used.
    if hub_kind(env) == "mqtt":
        from edge_module.mqtt_hub import MqttHub

        settings = MqttSettings.from_env(env)
        return MqttHub(settings, asyncio.get_running_loop(), intake_capacity, metrics)
    from edge_module.sdk_hub import SdkHub

    return SdkHub.from_edge_environment(intake_capacity, sas_token_ttl_s, metrics)
