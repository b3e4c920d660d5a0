"""Wires a ``Hub`` to the scoring pipeline, the model updater and the methods; runs until stopped.

Desired properties: every patch, and the full twin the SDK hands over after a reconnect, is a
cue to GET the whole desired document and reconcile with it. A patch alone cannot say which
keys were deleted while the module was away; the full document can, and its ``$version``
orders it. At start-up the same GET picks up changes made while the module was stopped.

Shutdown order matters: stop intake, let the pipeline score or report what it holds (within
the grace period), send those outcomes, report the final state, and only then close the hub
connection, so no frame disappears without a prediction or an error message.

Every message on the module's inputs gets an outcome: frames their prediction or error, a
message on an input the module does not read an ``unknown_input`` error; a message edgeHub
delivers again after a lost acknowledgement is recognised (``redelivery``) and skipped. A
frame too large for a message arrives as a claim check, redeemed here (``claim_checks``).
Outcomes leave through the outbox, which keeps them while edgeHub is away; the watchdog ends
the module (``HubWedgedError``, a non-zero exit) when the connection is wedged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from classifier.claim_checks import ClaimChecks, is_claim_check
from classifier.config import ModuleConfig
from classifier.errors import FrameError, FrameErrorCode
from classifier.methods import ModuleMethods
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.model_update import ModelUpdater, Startup
from classifier.model_update.desired import SCHEMA_VERSION
from classifier.outcome_messages import sendable
from classifier.pipeline import Outcome, Pipeline
from classifier.predictions import utc_now
from classifier.quality import QualityLoop
from classifier.redelivery import RecentMessages
from edge_module.errors import HubError, HubWedgedError
from edge_module.hub import Hub, InboundMessage, MethodResult, merge_patch
from edge_module.session import HubSession

log = logging.getLogger(__name__)


class ClassifierModule:
    def __init__(
        self,
        hub: Hub,
        pipeline: Pipeline,
        config: ModuleConfig,
        updater: ModelUpdater | None = None,
    ) -> None:
        self.hub = hub
        self.pipeline = pipeline
        self.config = config
        self.metrics: Metrics = pipeline.metrics
        self.session = HubSession(hub, config.hub, self.metrics)
        self.outbox = self.session.outbox
        self.wedged = self.session.wedged
        self.recent = RecentMessages()
        self.claims = ClaimChecks(
            config.claim_checks, config.pipeline.limits.max_frame_bytes, self.metrics
        )
        if updater is None:
            # Without a cache (scoring files, tests): the twin's settings apply, and model
            # updates are refused with cache_unavailable.
            current = pipeline.store.current
            path = current.engine.model.path
            startup = Startup(current, None, path, current.info.sha256)
            updater = ModelUpdater(pipeline, startup, config.updates, config.engine, hub.report)
        self.updater = updater
        # After the outcome: signals per model and the capture of frames worth labelling.
        self.quality = QualityLoop(
            config.quality, self.metrics, hub.report, lambda: pipeline.model_info
        )
        updater.on_accepted.append(lambda desired: self.quality.apply_capture(desired.capture))
        self.methods = ModuleMethods(pipeline, updater, self.status)
        self._desired: dict[str, Any] = {}

    @classmethod
    def build(
        cls, hub: Hub, config: ModuleConfig, startup: Startup, metrics: Metrics | None = None
    ) -> ClassifierModule:
        store = ModelStore(startup.model, config.probation_frames, config.probation_s)
        pipeline = Pipeline(store, config.pipeline, metrics or Metrics())
        updater = ModelUpdater(pipeline, startup, config.updates, config.engine, hub.report)
        return cls(hub, pipeline, config, updater)

    async def emit(self, outcome: Outcome) -> None:
        config = self.config
        await self.outbox.put(sendable(outcome, config.predictions_output, config.errors_output))
        self.quality.observe(outcome)

    async def run(self, stop: asyncio.Event) -> None:
        self.hub.on_message(self._on_message)
        self.hub.on_method(self._on_method)
        self.hub.on_desired_properties(self._on_desired)
        await self.pipeline.start(self.emit)
        self.quality.start()
        await self.session.open(stop)
        await self._report_state("running")
        await self.updater.report_startup()
        await self._resync(None)
        info = self.pipeline.model_info
        log.info(
            "scoring %r on %s with %s %s (%s)",
            self.config.input_name,
            info.provider,
            info.name,
            info.version,
            info.sha256[:12],
        )
        try:
            await stop.wait()
        finally:
            await self.session.stop_watching()
            await self._shut_down()
        if self.wedged.is_set():
            raise HubWedgedError(self.session.wedged_reason)

    async def _shut_down(self) -> None:
        log.info("stopping: %d frames queued", self.pipeline.queued)
        started = asyncio.get_running_loop().time()
        grace_s = self.config.shutdown_grace_s
        await self.pipeline.stop(grace_s)
        await self.updater.close()
        left_s = max(1.0, grace_s - (asyncio.get_running_loop().time() - started))
        quality = await self.quality.stop(left_s / 2)
        await self.session.close(left_s / 2, self._state_report("stopped") | quality)

    async def _on_message(self, message: InboundMessage) -> None:
        if self.recent.is_repeat(message):
            self.metrics.count("messages_redelivered")
            log.info("skipping message %r: delivered again by edgeHub", message.message_id)
            return
        if message.input_name != self.config.input_name:
            self.metrics.count("messages_unknown_input")
            error = FrameError(
                FrameErrorCode.UNKNOWN_INPUT,
                f"this module reads frames on input {self.config.input_name!r} only",
            )
            self.pipeline.fail_message(message, error)
            return
        if is_claim_check(message):
            # The frame is a file on the shared volume (claim_checks): its bytes go on instead.
            try:
                message = await self.claims.redeem(message)
            except FrameError as e:
                self.pipeline.fail_message(message, e)
                return
        await self.pipeline.submit(message)

    async def _on_method(self, name: str, payload: Any) -> MethodResult:
        return await self.methods.call(name, payload)

    async def _on_desired(self, patch: dict[str, Any]) -> None:
        await self._resync(patch)

    async def _resync(self, patch: dict[str, Any] | None) -> None:
        try:
            self._desired = await self.hub.get_desired_properties()
        except HubError as e:
            if patch is None:
                log.warning("cannot read the desired properties now: %s", e)
                return
            # Without the full document, a patch that follows the last one seen still applies.
            log.warning("desired GET failed (%s): applying the patch alone", e)
            self._desired = merge_patch(self._desired, patch)
        await self.updater.reconcile(self._desired)

    def status(self) -> dict[str, Any]:
        return {
            "model": self.pipeline.store.current.describe(),
            "modelUpdate": self.updater.status.to_dict(),
            "queued": self.pipeline.queued,
            "outbox": self.outbox.depth,
            "metrics": self.metrics.snapshot(),
            "methods": self.methods.names,
            "time": utc_now(),
        }

    async def _report_state(self, state: str) -> None:
        await self.hub.report(self._state_report(state))

    def _state_report(self, state: str) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "state": state,
            "model": self.pipeline.store.current.describe(),
            "updated_at": utc_now(),
        }
