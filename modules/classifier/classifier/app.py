"""Wires a ``Hub`` to the scoring pipeline and runs until told to stop.

Shutdown order matters: stop intake, let the pipeline score or report what it holds (within
the grace period), send those outcomes, report the final state, and only then close the hub
connection, so no frame disappears without a prediction or an error message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from classifier.config import ModuleConfig
from classifier.hub import Hub, InboundMessage, MethodResult
from classifier.metrics import Metrics
from classifier.pipeline import Outcome, Pipeline
from classifier.predictions import FrameFailure, Prediction, utc_now

log = logging.getLogger(__name__)


class ClassifierModule:
    def __init__(self, hub: Hub, pipeline: Pipeline, config: ModuleConfig) -> None:
        self.hub = hub
        self.pipeline = pipeline
        self.config = config
        self.metrics: Metrics = pipeline.metrics

    async def emit(self, outcome: Outcome) -> None:
        if isinstance(outcome, Prediction):
            await self.hub.send(self.config.predictions_output, outcome.to_message())
        elif isinstance(outcome, FrameFailure):
            await self.hub.send(self.config.errors_output, outcome.to_message())

    async def run(self, stop: asyncio.Event) -> None:
        self.hub.on_message(self._on_message)
        self.hub.on_method(self._on_method)
        await self.pipeline.start(self.emit)
        await self.hub.connect()
        await self._report_state("running")
        log.info(
            "scoring %r on %s with %s (%s)",
            self.config.input_name,
            self.pipeline.model_info.provider,
            self.pipeline.model_info.name,
            self.pipeline.model_info.sha256[:12],
        )
        try:
            await stop.wait()
        finally:
            log.info("stopping: %d frames queued", self.pipeline.queued)
            await self.pipeline.stop(self.config.shutdown_grace_s)
            try:
                await asyncio.wait_for(self._report_state("stopped"), 5.0)
            except Exception as e:  # the hub may already be gone; shutdown goes on
                log.warning("could not report the stopped state: %s", e)
            await self.hub.close()

    async def _on_message(self, message: InboundMessage) -> None:
        if message.input_name != self.config.input_name:
            self.metrics.count("messages_unknown_input")
            log.warning("ignoring a message on unknown input %r", message.input_name)
            return
        await self.pipeline.submit(message)

    async def _on_method(self, name: str, payload: Any) -> MethodResult:
        if name == "get_status":
            return MethodResult(200, self.status())
        return MethodResult(404, {"error": f"unknown method {name!r}", "methods": ["get_status"]})

    def status(self) -> dict[str, Any]:
        return {
            "model": self.pipeline.model_info.to_dict(),
            "queued": self.pipeline.queued,
            "metrics": self.metrics.snapshot(),
            "time": utc_now(),
        }

    async def _report_state(self, state: str) -> None:
        await self.hub.report(
            {
                "state": state,
                "model": self.pipeline.model_info.to_dict(),
                "updated_at": utc_now(),
            }
        )
