"""How the module treats its edgeHub connection: outbox, intake flow control, wedge watchdog
and SAS token lifetime (``ModuleConfig.hub``; docs/configuration.md lists the variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from classifier.outbox import OutboxConfig

# The SDK renews a token 120 s before it expires; a shorter life would renew without end.
MIN_SAS_TOKEN_TTL_S = 130


@dataclass(frozen=True)
class HubSettings:
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    # Frames received from the SDK and not yet taken by the pipeline. At half of it the
    # adapter stops receiving (unsubscribes from its inputs: edgeHub keeps the messages).
    intake_capacity: int = 32
    # Connected by the SDK's account, but no call completing for this long: exit.
    wedge_timeout_s: float = 120.0
    # With no other call for this long, the watchdog asks for the twin to test the line.
    probe_interval_s: float = 60.0
    sas_token_ttl_s: int = 3600
