"""The frame source's deployment settings, read once from the environment at start-up and
validated as a whole (the source itself: ``settings``; docs/configuration.md lists them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edge_module.claim_check import ClaimLimits
from edge_module.env import EnvReader, module_log_level, positive
from edge_module.errors import SettingsError
from edge_module.hub_settings import HubSettings
from edge_module.message_size import EDGEHUB_MAX_MESSAGE_BYTES
from edge_module.outbox import OutboxPolicy
from framesource.settings import SourceSettings, source_from_env

# The images mount the shared claim-check volume here (the templates), as the classifier's do.
DEFAULT_CLAIM_CHECK_DIR = Path("/var/lib/edge-frames/claims")
# Frames are large: a few seconds of video wait for edgeHub, not 2,000 frames.
DEFAULT_OUTBOX_CAPACITY = 64


@dataclass(frozen=True)
class ClaimCheckConfig:
    folder: Path | None = DEFAULT_CLAIM_CHECK_DIR  # None: frames too large are dropped
    limits: ClaimLimits = field(default_factory=ClaimLimits)
    # A frame whose message would be larger goes by claim check. edgeHub's limit by default;
    # lower it to keep large frames off edgeHub altogether.
    above_bytes: int = EDGEHUB_MAX_MESSAGE_BYTES
    sweep_interval_s: float = 10.0


@dataclass(frozen=True)
class FrameSourceConfig:
    source: SourceSettings
    source_id: str
    output: str = "frames"
    claim_checks: ClaimCheckConfig = field(default_factory=ClaimCheckConfig)
    hub: HubSettings = field(default_factory=HubSettings)
    log_level: str = "INFO"
    shutdown_grace_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FrameSourceConfig:
        problems: list[str] = []
        try:
            source = source_from_env(env)
        except SettingsError as e:
            problems.append(str(e))
            source = SourceSettings()
        reader = EnvReader(env)
        get = reader.get
        folder = reader.text("CLAIM_CHECK_DIR", str(DEFAULT_CLAIM_CHECK_DIR))
        base = ClaimLimits()
        claim_checks = ClaimCheckConfig(
            folder=None if folder.lower() == "off" else Path(folder),
            limits=ClaimLimits(
                budget_bytes=get("CLAIM_CHECK_BUDGET_BYTES", int, base.budget_bytes, positive),
                max_age_s=get("CLAIM_CHECK_MAX_AGE_S", float, base.max_age_s, positive),
                min_free_bytes=get(
                    "CLAIM_CHECK_MIN_FREE_BYTES", int, base.min_free_bytes, lambda v: v >= 0
                ),
            ),
            above_bytes=get(
                "CLAIM_CHECK_ABOVE_BYTES",
                int,
                EDGEHUB_MAX_MESSAGE_BYTES,
                lambda v: 1_024 <= v <= EDGEHUB_MAX_MESSAGE_BYTES,
            ),
            sweep_interval_s=get("CLAIM_CHECK_SWEEP_S", float, 10.0, positive),
        )
        hub = HubSettings.from_env(
            reader, OutboxPolicy.DROP_OLDEST, send_window=4, outbox_capacity=DEFAULT_OUTBOX_CAPACITY
        )
        config = cls(
            source=source,
            source_id=reader.text("SOURCE_ID", reader.text("IOTEDGE_MODULEID", "framesource")),
            output=reader.text("FRAMES_OUTPUT", "frames"),
            claim_checks=claim_checks,
            hub=hub,
            log_level=module_log_level(reader),
            shutdown_grace_s=get("SHUTDOWN_GRACE_S", float, 5.0, lambda v: 0 <= v <= 300),
        )
        problems += reader.problems
        if problems:
            raise SettingsError("invalid configuration: " + "; ".join(problems))
        return config
