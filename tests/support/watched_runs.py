"""An inference engine's ``run`` watched from the threads that call it: how many runs overlapped
at most, when each began and in which thread, and a hook before each run (by its number)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from classifier.engine import InferenceEngine


class WatchedRuns:
    def __init__(
        self, engine: InferenceEngine, before_run: Callable[[int], None] | None = None
    ) -> None:
        self.most = 0  # runs at once, at most
        self.starts: list[float] = []  # time.monotonic() as each run began
        self.threads: list[int] = []  # the thread of each run (threading.get_ident())
        self._running = 0
        self._lock = threading.Lock()
        self._run = engine.run
        self._before_run = before_run
        engine.run = self  # type: ignore[method-assign]

    def __call__(self, batch: Any) -> Any:
        with self._lock:
            self._running += 1
            self.most = max(self.most, self._running)
            self.starts.append(time.monotonic())
            self.threads.append(threading.get_ident())
            nth = len(self.starts)
        try:
            if self._before_run is not None:
                self._before_run(nth)
            return self._run(batch)
        finally:
            with self._lock:
                self._running -= 1
