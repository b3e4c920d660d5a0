"""Progress of a job on stderr: shards and frames done, frames a second, workers, retries.

A line at most every ``interval_s`` (and one at the end), so a log file stays readable; on a
terminal the line is rewritten in place.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self, shards: int, frames: int, stream: TextIO | None = None, interval_s: float = 1.0
    ) -> None:
        self.shards_total = shards
        self.frames_total = frames
        self.shards_done = 0
        self.frames_done = 0
        self.retries = 0
        self.workers = 0
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._started = time.monotonic()
        self._last = 0.0
        self._tty = self._stream.isatty()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def shard_done(self, frames: int) -> None:
        self.shards_done += 1
        self.frames_done += frames
        self.show()

    def retry(self, shard: str, why: str) -> None:
        self.retries += 1
        self._write(f"score-video: retrying {shard} alone: {why}", final=True)

    def note(self, text: str) -> None:
        self._write(f"score-video: {text}", final=True)

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._interval_s:
            return
        self._last = now
        rate = self.frames_done / max(self.elapsed_s, 1e-9)
        self._write(
            f"score-video: {self.shards_done}/{self.shards_total} shards, "
            f"{self.frames_done}/{self.frames_total} frames, {rate:.1f} frames/s, "
            f"{self.workers} worker(s), {self.retries} retried",
            final=final,
        )

    def _write(self, line: str, final: bool) -> None:
        if self._tty and not final:
            self._stream.write("\r" + line + "\x1b[K")  # rewritten in place
        else:
            self._stream.write(("\r" if self._tty else "") + line + "\n")
        self._stream.flush()
