"""Which frames are sent (``RateGate``) and when (``Pacer``).

Frame skipping is decided on the frames' own timestamps: presentation times for a file (so the
same file always sends the same frames), arrival times for a stream. A frame is kept when it
is due; the next one is due a period later, so a 30 fps camera at ``fps=10`` sends every
third frame and a 25 fps one alternately every second and third. After a gap (a reconnect, a
seek) the schedule restarts at the next frame instead of sending a burst to catch up.

Pacing makes files and folders play in real time (``realtime``): a kept frame waits until
its timestamp, measured from the first frame sent, has come on the monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Timestamps are rounded in containers (a 30 fps file's are multiples of 1/30 s, stored in
# milliseconds or in 1/90000 s): a frame this close to due counts as due.
_TOLERANCE_S = 1e-3


class RateGate:
    def __init__(self, fps: float) -> None:
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        self._next_due: float | None = None

    def admit(self, timestamp_s: float) -> bool:
        if not self.period_s:
            return True
        due = self._next_due
        if due is not None and timestamp_s + _TOLERANCE_S < due:
            if due - timestamp_s <= 2 * self.period_s:
                return False
            due = None  # time went backwards (a file looping, a camera's clock reset)
        if due is None or timestamp_s - due > 2 * self.period_s:
            due = timestamp_s  # the first frame, or after a gap: start afresh
        self._next_due = due + self.period_s
        return True


class Pacer:
    """Real-time playback of timestamped frames; ``wait`` returns False when stopped."""

    def __init__(self, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        self._stop = stop
        self._clock = clock
        self._origin: float | None = None  # monotonic time of timestamp 0

    def wait(self, timestamp_s: float) -> bool:
        now = self._clock()
        if self._origin is None:
            self._origin = now - timestamp_s
        delay = self._origin + timestamp_s - now
        if delay < -1.0 or delay > 60.0:
            # Far behind (a slow hub held us up) or a jump ahead: re-anchor, never burst.
            self._origin = now - timestamp_s
            delay = 0.0
        return not self._stop.wait(delay) if delay > 0 else not self._stop.is_set()
