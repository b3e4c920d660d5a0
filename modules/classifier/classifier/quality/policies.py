"""Which predictions are worth a person's time: the capture policies, their rate limits and
the day's storage budget.

A prediction is offered to the policies in a fixed order (``POLICY_NAMES``: low confidence,
small margin, listed classes, random) and is captured by the first that wants it and still
has room in its rate limit, so one frame is captured once, under one policy. The order puts
the policies that find the model's mistakes before the one that only samples.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from classifier.quality.capture_settings import CaptureSettings


class RateLimit:
    """A token bucket: ``per_minute`` frames a minute on average, bursts of up to a tenth of
    that (at least one), so a burst of bad frames cannot use a whole minute's share at once."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 10.0)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate_per_s)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class DailyBudget:
    """Bytes written per UTC day; a new day starts from zero."""

    def __init__(self, max_bytes: int, now: Callable[[], float] = time.time) -> None:
        self.max_bytes = max_bytes
        self._now = now
        self._day = self._today()
        self.used_bytes = 0

    def _today(self) -> str:
        return datetime.fromtimestamp(self._now(), UTC).date().isoformat()

    def reserve(self, size: int) -> bool:
        today = self._today()
        if today != self._day:
            self._day, self.used_bytes = today, 0
        if self.used_bytes + size > self.max_bytes:
            return False
        self.used_bytes += size
        return True

    def release(self, size: int) -> None:
        """Gives back a reservation whose capture was never written (dropped)."""
        self.used_bytes = max(0, self.used_bytes - size)


@dataclass(frozen=True)
class Candidate:
    """What a policy judges: the ranked labels of one prediction (best first)."""

    labels: tuple[tuple[str, float], ...]

    @property
    def top1(self) -> float:
        return self.labels[0][1] if self.labels else 0.0

    @property
    def margin(self) -> float:
        # With top_k 1 (or a threshold hiding the runner-up) the margin is top-1 itself.
        second = self.labels[1][1] if len(self.labels) > 1 else 0.0
        return self.top1 - second


class CaptureSelector:
    """The policies of one ``CaptureSettings``, each with its own rate limit."""

    def __init__(
        self,
        settings: CaptureSettings,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        s = settings
        wants: list[tuple[str, float, Callable[[Candidate], bool]]] = []
        if s.low_confidence is not None:
            below = s.low_confidence.below
            wants.append(("low_confidence", s.low_confidence.per_minute, lambda c: c.top1 < below))
        if s.margin is not None:
            gap = s.margin.below
            wants.append(("margin", s.margin.per_minute, lambda c: c.margin < gap))
        if s.classes is not None:
            labels = s.classes.labels
            wants.append(
                (
                    "classes",
                    s.classes.per_minute,
                    lambda c: bool(c.labels) and c.labels[0][0] in labels,
                )
            )
        if s.random is not None:
            p = s.random.probability
            wants.append(("random", s.random.per_minute, lambda c: self._rng.random() < p))
        self._policies = [(name, RateLimit(rate, clock), want) for name, rate, want in wants]

    def choose(self, candidate: Candidate) -> tuple[str | None, list[str]]:
        """The policy that captures this prediction (or None), and the policies that wanted
        it but had used their rate limit."""
        limited: list[str] = []
        for name, limit, wants in self._policies:
            if not wants(candidate):
                continue
            if limit.take():
                return name, limited
            limited.append(name)
        return None, limited
