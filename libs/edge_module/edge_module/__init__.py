"""What every module of this solution shares: the Hub seam and its three implementations, the
outbox and wedge watchdog around a connection, settings from the environment, and the run
loop. Only ``edge_module.sdk_hub`` imports azure-iot-device and only
``edge_module.mqtt_client`` imports paho; ``edge_module.hub_factory.hub_from_environment``
picks one (``HUB=edgehub`` or ``mqtt``, docs/mqtt.md) and imports it only then, so tools and
tests that never connect load neither.

    Hub, InboundMessage, OutboundMessage, MethodResult, merge_patch     the seam (hub)
    LocalHub                                                            in-process hub
    HubSession, HubSettings, Outbox, Outgoing, HubWatchdog              around a connection
    EnvReader                                                           settings from the env
    run_module, configure_logging                                       the run loop
    fits, EDGEHUB_MAX_MESSAGE_BYTES                                     edgeHub's message limit
"""

from edge_module.errors import (
    EdgeModuleError,
    HubError,
    HubWedgedError,
    OutboundRejectedError,
    SettingsError,
)
from edge_module.hub import Hub, InboundMessage, MethodResult, OutboundMessage, merge_patch
from edge_module.hub_settings import HubSettings
from edge_module.local_hub import LocalHub
from edge_module.message_size import EDGEHUB_MAX_MESSAGE_BYTES, fits
from edge_module.outbox import Outbox, OutboxConfig, OutboxPolicy, Outgoing
from edge_module.session import HubSession
from edge_module.watchdog import HubWatchdog

__all__ = [
    "EDGEHUB_MAX_MESSAGE_BYTES",
    "EdgeModuleError",
    "Hub",
    "HubError",
    "HubSession",
    "HubSettings",
    "HubWatchdog",
    "HubWedgedError",
    "InboundMessage",
    "LocalHub",
    "MethodResult",
    "OutboundMessage",
    "OutboundRejectedError",
    "Outbox",
    "OutboxConfig",
    "OutboxPolicy",
    "Outgoing",
    "SettingsError",
    "fits",
    "merge_patch",
]
