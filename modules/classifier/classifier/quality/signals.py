"""What a canary is judged on: per model version, over a sliding window of recent outcomes.

    mean_confidence        mean top-1 confidence of the frames it scored
    low_confidence_share   share of those with top-1 under ``low_confidence_below``
    error_rate             frames the model failed (inference errors) / frames it was given
    p50_ms, p99_ms         arrival-to-prediction latency

Only failures that are the model's count as its errors (inference failed, or an internal error
while scoring): a camera sending corrupt JPEGs says nothing about a model. Models are keyed
by the first 12 hex digits of their sha256, because twin property names may not hold the dots
of a version string, and two builds of one version are different models.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from classifier.errors import FrameErrorCode
from classifier.predictions import FrameFailure, ModelInfo, Prediction

_MODEL_ERRORS = {FrameErrorCode.INFERENCE_FAILED, FrameErrorCode.INTERNAL_ERROR}
DEFAULT_WINDOW_S = 300.0
DEFAULT_LOW_CONFIDENCE = 0.5
# Outcomes remembered at most, whatever the window: memory stays bounded at any frame rate.
MAX_EVENTS = 50_000


@dataclass(frozen=True)
class _Event:
    at_s: float
    model_key: str
    confidence: float | None  # None: the model failed this frame
    latency_ms: float | None


class ModelSignals:
    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        low_confidence_below: float = DEFAULT_LOW_CONFIDENCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.low_confidence_below = low_confidence_below
        self._clock = clock
        self._events: deque[_Event] = deque(maxlen=MAX_EVENTS)
        self._models: dict[str, ModelInfo] = {}

    def observe(self, outcome: Prediction | FrameFailure, serving: ModelInfo) -> None:
        """``serving``: the model in use, to which a failure is attributed (a failure does not
        name its model; a prediction does)."""
        if isinstance(outcome, Prediction):
            model = outcome.model
            top = outcome.top
            confidence = top[1] if top is not None else 0.0
            latency = outcome.timings_ms.get("total")
        elif outcome.error.code in _MODEL_ERRORS:
            model, confidence, latency = serving, None, None
        else:
            return
        key = model.sha256[:12]
        self._models[key] = model
        self._events.append(_Event(self._clock(), key, confidence, latency))

    def report(self) -> dict[str, Any]:
        since = self._clock() - self.window_s
        while self._events and self._events[0].at_s < since:
            self._events.popleft()
        by_model: dict[str, list[_Event]] = {}
        for event in self._events:
            by_model.setdefault(event.model_key, []).append(event)
        for key in [k for k in self._models if k not in by_model]:
            del self._models[key]
        return {
            "window_s": self.window_s,
            "low_confidence_below": self.low_confidence_below,
            "models": {key: self._summary(key, events) for key, events in by_model.items()},
        }

    def _summary(self, key: str, events: list[_Event]) -> dict[str, Any]:
        model = self._models[key]
        scored = [e.confidence for e in events if e.confidence is not None]
        latencies = sorted(e.latency_ms for e in events if e.latency_ms is not None)
        low = sum(1 for c in scored if c < self.low_confidence_below)
        return {
            "name": model.name,
            "version": model.version,
            "sha256": model.sha256,
            "frames": len(events),
            "mean_confidence": round(sum(scored) / len(scored), 4) if scored else None,
            "low_confidence_share": round(low / len(scored), 4) if scored else None,
            "error_rate": round((len(events) - len(scored)) / len(events), 4),
            "p50_ms": _percentile(latencies, 0.50),
            "p99_ms": _percentile(latencies, 0.99),
        }


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values; None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 3)
