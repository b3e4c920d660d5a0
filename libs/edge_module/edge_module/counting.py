"""What the library counts into: any object with ``count(name, n)``.

The classifier passes its ``Metrics`` (which also feed its Prometheus endpoint); a module
without metrics of its own uses ``Counts``, a plain thread-safe tally.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Protocol


class Counting(Protocol):
    def count(self, name: str, n: int = 1) -> None: ...


class Counts:
    """Thread-safe counters: SDK threads and worker threads count too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)
