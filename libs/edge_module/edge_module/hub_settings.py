"""How a module treats its edgeHub connection: outbox, intake flow control, wedge watchdog and
SAS token lifetime. Every module reads the same variables (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_module.env import EnvReader, positive
from edge_module.outbox import OutboxConfig, OutboxPolicy

# The SDK renews a token 120 s before it expires; a shorter life would renew without end.
MIN_SAS_TOKEN_TTL_S = 130


@dataclass(frozen=True)
class HubSettings:
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    # Messages received from the SDK and not yet taken by the module. At half of it the
    # adapter stops receiving (unsubscribes from its inputs: edgeHub keeps the messages).
    intake_capacity: int = 32
    # Connected by the SDK's account, but no call completing for this long: exit.
    wedge_timeout_s: float = 120.0
    # With no other call for this long, the watchdog asks for the twin to test the line.
    probe_interval_s: float = 60.0
    sas_token_ttl_s: int = 3600

    @classmethod
    def from_env(
        cls,
        reader: EnvReader,
        outbox_policy: OutboxPolicy,
        send_window: int,
        outbox_capacity: int = OutboxConfig.capacity,
    ) -> HubSettings:
        """The module's defaults: ``outbox_policy`` and ``outbox_capacity`` for
        ``OUTBOX_OVERFLOW_POLICY`` and ``OUTBOX_CAPACITY``; ``send_window`` is how many sends
        may be in flight at once."""
        get = reader.get
        return cls(
            outbox=OutboxConfig(
                capacity=get("OUTBOX_CAPACITY", int, outbox_capacity, positive),
                policy=get("OUTBOX_OVERFLOW_POLICY", OutboxPolicy, outbox_policy),
                send_window=send_window,
                call_timeout_s=get("HUB_CALL_TIMEOUT_S", float, 30.0, lambda v: 0 < v <= 3600),
            ),
            intake_capacity=get("INTAKE_CAPACITY", int, cls.intake_capacity, lambda v: v >= 4),
            wedge_timeout_s=get("HUB_WEDGE_TIMEOUT_S", float, cls.wedge_timeout_s, lambda v: v > 0),
            probe_interval_s=get(
                "HUB_PROBE_INTERVAL_S", float, cls.probe_interval_s, lambda v: v > 0
            ),
            sas_token_ttl_s=get(
                "SAS_TOKEN_TTL_S",
                int,
                cls.sas_token_ttl_s,
                lambda v: MIN_SAS_TOKEN_TTL_S <= v <= 365 * 86_400,
            ),
        )
