"""The module's side of the model-quality loop: every outcome feeds the per-model signals and
the capture stage, and both are reported (``signals``, ``capture``) every ``QUALITY_REPORT_S``.

Everything here runs after the outcome is handed on, and nothing in it waits on the frame
path: ``observe`` is a few appends on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from classifier.metrics import Metrics
from classifier.predictions import FrameFailure, ModelInfo, Prediction
from classifier.quality.capture_settings import CaptureSettings, CaptureStorage
from classifier.quality.capture_stage import CaptureStage
from classifier.quality.signals import DEFAULT_LOW_CONFIDENCE, DEFAULT_WINDOW_S, ModelSignals
from edge_module.env import EnvReader, positive
from edge_module.errors import HubError

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class QualityConfig:
    storage: CaptureStorage = field(default_factory=CaptureStorage)
    window_s: float = DEFAULT_WINDOW_S
    low_confidence_below: float = DEFAULT_LOW_CONFIDENCE
    report_s: float = 30.0

    @classmethod
    def from_env(cls, reader: EnvReader) -> QualityConfig:
        get = reader.get
        return cls(
            storage=CaptureStorage.from_env(reader),
            window_s=get("SIGNALS_WINDOW_S", float, DEFAULT_WINDOW_S, lambda v: 1 <= v <= 86_400),
            low_confidence_below=get(
                "SIGNALS_LOW_CONFIDENCE", float, DEFAULT_LOW_CONFIDENCE, lambda v: 0 <= v <= 1
            ),
            report_s=get("QUALITY_REPORT_S", float, 30.0, positive),
        )


class QualityLoop:
    def __init__(
        self,
        config: QualityConfig,
        metrics: Metrics,
        send: Send,
        serving: Callable[[], ModelInfo],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.signals = ModelSignals(config.window_s, config.low_confidence_below)
        self.capture = CaptureStage(config.storage, metrics, rng=rng)
        self._send = send
        self._serving = serving
        self._reported_models: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def observe(self, outcome: Prediction | FrameFailure) -> None:
        self.signals.observe(outcome, self._serving())
        if isinstance(outcome, Prediction):
            self.capture.offer(outcome)

    def apply_capture(self, settings: CaptureSettings) -> dict[str, Any]:
        """The desired ``capture`` section, accepted with the rest of the document."""
        return self.capture.apply(settings)

    def start(self) -> None:
        self.capture.start()
        self._task = asyncio.create_task(self._report_every(), name="quality-report")

    async def stop(self, grace_s: float) -> dict[str, Any]:
        """Stops the writer and the reports; returns the last report for the final patch."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.capture.stop(grace_s)
        return self.report()

    def report(self) -> dict[str, Any]:
        signals = self.signals.report()
        models = signals["models"]
        # Reported properties merge: a model gone from the window is deleted with a null.
        gone: dict[str, Any] = dict.fromkeys(self._reported_models - models.keys())
        self._reported_models = set(models)
        return {"signals": signals | {"models": models | gone}, "capture": self.capture.report()}

    async def _report_every(self) -> None:
        while True:
            await asyncio.sleep(self.config.report_s)
            try:
                await self._send(self.report())
            except HubError as e:  # the next round reports again; nothing is lost but time
                log.warning("could not report capture and signals: %s", e)
