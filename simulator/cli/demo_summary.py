"""The demo's view of predictions arriving upstream: per-frame lines and a rolling summary.

Ground truth travels with each frame (the synthetic camera's ``truth`` property, echoed by
the classifier's PASSTHROUGH_PROPERTIES), and latency is upstream enqueue time minus the
camera's capture time, both taken from this machine's clock.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from simulator.hub.upstream import StoredMessage


@dataclass(frozen=True)
class Observation:
    frame_id: str
    truth: str | None
    label: str | None
    confidence: float
    latency_ms: float | None
    error: str | None = None
    model_version: str | None = None
    seq: int | None = None  # the camera's frame counter, echoed by the classifier


def observe(stored: StoredMessage) -> Observation | None:
    return observe_body(stored.message.body, stored.enqueued_time)


def observe_body(body: bytes, received: dt.datetime) -> Observation | None:
    """An outcome's body, received (upstream, or from a broker) at ``received``."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "frame" not in doc:
        return None
    frame = doc["frame"]
    properties = frame.get("properties") or {}
    truth = properties.get("truth")
    seq = int(properties["seq"]) if str(properties.get("seq", "")).isdigit() else None
    latency = None
    if frame.get("capture_time"):
        captured = dt.datetime.fromisoformat(frame["capture_time"].replace("Z", "+00:00"))
        latency = (received - captured).total_seconds() * 1000
    if "error" in doc:
        return Observation(frame["id"], truth, None, 0.0, latency, doc["error"]["code"], seq=seq)
    inferences = doc.get("inferences") or []
    top = inferences[0]["classification"]["tag"] if inferences else {}
    version = (doc.get("model") or {}).get("version")
    return Observation(
        frame["id"],
        truth,
        top.get("value"),
        float(top.get("confidence", 0.0)),
        latency,
        model_version=version,
        seq=seq,
    )


@dataclass
class Summary:
    window_s: float = 5.0
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    correct: int = 0
    judged: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    # predictions per model version, in the order the versions first appeared
    versions: dict[str, int] = field(default_factory=dict)
    _seqs: set[int] = field(default_factory=set)
    _recent: deque[float] = field(default_factory=deque)

    def add(self, obs: Observation) -> None:
        now = time.monotonic()
        self.total += 1
        if obs.seq is not None:
            self._seqs.add(obs.seq)
        if obs.model_version is not None:
            self.versions[obs.model_version] = self.versions.get(obs.model_version, 0) + 1
        self._recent.append(now)
        while self._recent and self._recent[0] < now - self.window_s:
            self._recent.popleft()
        if obs.error:
            self.errors += 1
            return
        if obs.latency_ms is not None:
            self.latencies.append(obs.latency_ms)
        if obs.truth is not None:
            self.judged += 1
            self.correct += obs.truth == obs.label

    @property
    def accuracy(self) -> float:
        return self.correct / self.judged if self.judged else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = len(self._recent) / min(self.window_s, elapsed)
        return (
            f"[{elapsed:6.1f}s] {self.total} predictions, {rate:5.1f} frames/s, "
            f"latency p50 {self.percentile(0.5):.1f} ms p90 {self.percentile(0.9):.1f} ms "
            f"p99 {self.percentile(0.99):.1f} ms, accuracy {self.accuracy:.1%} "
            f"({self.correct}/{self.judged}), errors {self.errors}, "
            f"models {self.models_text()}"
        )

    def missing(self) -> int:
        """Camera frames with no outcome between the first and the last one seen."""
        if not self._seqs:
            return 0
        return max(self._seqs) - min(self._seqs) + 1 - len(self._seqs)

    def models_text(self) -> str:
        versions = " -> ".join(f"{v} ({n})" for v, n in self.versions.items()) or "-"
        return f"{versions}, frames missing {self.missing()}"


def frame_line(obs: Observation) -> str:
    latency = f"{obs.latency_ms:6.1f} ms" if obs.latency_ms is not None else "   ?   "
    if obs.error:
        return f"{obs.frame_id:>16}  ERROR {obs.error}  {latency}"
    mark = "ok" if obs.truth == obs.label else "MISS"
    return f"{obs.frame_id:>16}  truth {obs.truth or '?':<9} predicted {obs.label or '-':<9} {obs.confidence:5.3f}  {latency}  {mark}"
