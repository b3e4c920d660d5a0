"""In-process counters and latency histograms. ``snapshot()`` summarises them for the
``get_status`` method; ``export()`` hands the raw buckets to the Prometheus endpoint.

Histograms use fixed log-spaced buckets so memory stays constant however long the module runs.
Sizes (frames per batch) are counted per exact value: they are small integers.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

# 0.05 ms .. ~105 s, each bucket 1.25x the previous: percentiles within 12.5%.
_BOUNDS_MS: tuple[float, ...] = tuple(0.05 * 1.25**i for i in range(66))


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS_MS) + 1)
        self.total = 0
        self.sum_ms = 0.0
        self.max_ms = 0.0

    def observe(self, value_ms: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS_MS, value_ms)] += 1
        self.total += 1
        self.sum_ms += value_ms
        self.max_ms = max(self.max_ms, value_ms)

    def observe_all(self, values_ms: list[float]) -> None:
        """``observe`` for each value, without a call per value (a batch's frames)."""
        if not values_ms:
            return
        counts = self.counts
        for value_ms in values_ms:
            counts[bisect.bisect_left(_BOUNDS_MS, value_ms)] += 1
        self.total += len(values_ms)
        self.sum_ms += sum(values_ms)
        self.max_ms = max(self.max_ms, max(values_ms))

    def percentile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (0 < q <= 1); 0.0 when empty."""
        if self.total == 0:
            return 0.0
        rank = q * self.total
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(_BOUNDS_MS[i], self.max_ms) if i < len(_BOUNDS_MS) else self.max_ms
        return self.max_ms

    def summary(self) -> dict[str, float]:
        mean = self.sum_ms / self.total if self.total else 0.0
        return {
            "count": self.total,
            "mean_ms": round(mean, 3),
            "p50_ms": round(self.percentile(0.50), 3),
            "p90_ms": round(self.percentile(0.90), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "max_ms": round(self.max_ms, 3),
        }


@dataclass(frozen=True)
class HistogramExport:
    """A histogram's raw state: ``counts[i]`` observations in (bounds[i-1], bounds[i]], the
    last one above every bound."""

    bounds_ms: tuple[float, ...]
    counts: tuple[int, ...]
    total: int
    sum_ms: float


@dataclass(frozen=True)
class MetricsExport:
    counters: dict[str, int]
    histograms: dict[str, HistogramExport]
    sizes: dict[str, dict[int, int]]


class Metrics:
    """Thread-safe: decode and inference threads record into it too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.histograms: dict[str, Histogram] = {}
        self.sizes: dict[str, Counter[int]] = {}

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def observe(self, name: str, value_ms: float) -> None:
        with self._lock:
            hist = self.histograms.get(name)
            if hist is None:
                hist = self.histograms[name] = Histogram()
            hist.observe(value_ms)

    def observe_many(self, values_ms: dict[str, list[float]]) -> None:
        """Several observations under one lock: the pipeline records a batch at a time."""
        with self._lock:
            for name, values in values_ms.items():
                hist = self.histograms.get(name)
                if hist is None:
                    hist = self.histograms[name] = Histogram()
                hist.observe_all(values)

    def observe_size(self, name: str, size: int) -> None:
        with self._lock:
            self.sizes.setdefault(name, Counter())[size] += 1

    def export(self) -> MetricsExport:
        """A consistent copy of everything, taken under the lock."""
        with self._lock:
            return MetricsExport(
                counters=dict(self.counters),
                histograms={
                    name: HistogramExport(_BOUNDS_MS, tuple(h.counts), h.total, h.sum_ms)
                    for name, h in self.histograms.items()
                },
                sizes={name: dict(counts) for name, counts in self.sizes.items()},
            )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": dict(self.counters),
                "latency": {k: h.summary() for k, h in sorted(self.histograms.items())},
            }
