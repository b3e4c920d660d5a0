"""One source, read in a thread of its own: open, gate, pace, encode, hand over; reconnect.

Why a thread: PyAV's reads and decodes block, and a live camera must be read as fast as it
sends (its frames pile up in FFmpeg's buffers otherwise, and what is sent grows stale), so
the reading must never wait behind the event loop.

States (reported): ``connecting`` (opening), ``streaming``, ``reconnecting`` (after a failure
or, for a stream, its end: waiting out the backoff, 1 s doubling to ``reconnect_max_s``, reset
once a connection has delivered frames for a while), ``finished`` (a file or folder without
``loop`` at its end, or ``frame_count`` reached), ``stopped``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_module.counting import Counting
from framesource.pacing import Pacer, RateGate
from framesource.settings import SourceSettings, redact
from framesource.sources import FrameReader, SourceError, SourceFrame, open_reader
from framesource.sources.frames import EncodedFrame

log = logging.getLogger(__name__)

# A connection that delivered frames for this long was healthy: the backoff starts over.
_HEALTHY_S = 30.0
_FIRST_RETRY_S = 1.0

# Called in the streamer's thread with each frame to send and the streamer's stop event (to
# stop waiting on); returns False to stop streaming.
Deliver = Callable[[SourceFrame, EncodedFrame, threading.Event], bool]
# Called in the streamer's thread on each change of state: (state, details).
OnState = Callable[[str, dict[str, Any]], None]


@dataclass
class StreamStats:
    read: int = 0
    skipped: int = 0
    sent: int = 0
    encode_failed: int = 0
    reconnects: int = 0


class Streamer:
    def __init__(
        self, settings: SourceSettings, deliver: Deliver, on_state: OnState, counts: Counting
    ) -> None:
        self.settings = settings
        self.stats = StreamStats()
        self._deliver = deliver
        self._on_state = on_state
        self._counts = counts
        self._stop = threading.Event()
        self._reader: FrameReader | None = None
        self._thread = threading.Thread(target=self._run, name="source", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Asks the thread to end and waits; False if it is still in a blocking read (it ends
        within ``read_timeout_s``, and is a daemon thread)."""
        self._stop.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        settings = self.settings
        retry_s = _FIRST_RETRY_S
        try:
            while not self._stop.is_set():
                self._state("connecting")
                started = time.monotonic()
                try:
                    finished = self._stream_once()
                except SourceError as e:
                    log.warning("%s", e)
                    self._state("reconnecting", error=str(e), retry_in_s=retry_s)
                else:
                    if self._stop.is_set():
                        break
                    if finished:
                        self._state("finished")
                        return
                    # A stream that ended is a camera that dropped: connect again.
                    self._state("reconnecting", error="the stream ended", retry_in_s=retry_s)
                if time.monotonic() - started >= _HEALTHY_S:
                    retry_s = _FIRST_RETRY_S
                if self._stop.wait(retry_s):
                    break
                self.stats.reconnects += 1
                self._counts.count("source_reconnects")
                retry_s = min(retry_s * 2, settings.reconnect_max_s)
        except Exception as e:  # a bug, not a source failure: say so, and stop streaming
            log.exception("the source thread failed")
            self._state("failed", error=repr(e))
            return
        self._state("stopped")

    def _stream_once(self) -> bool:
        """Streams one opening of the source; True when there is nothing more to send."""
        settings = self.settings
        reader = open_reader(settings)
        self._reader = reader
        try:
            self._state("streaming", stream=reader.describe())
            gate = RateGate(settings.fps)
            pacer = Pacer(self._stop)
            pace = settings.realtime and not settings.kind.live
            for frame in reader.frames():
                if self._stop.is_set():
                    return True
                self.stats.read += 1
                if not gate.admit(frame.timestamp_s):
                    self.stats.skipped += 1
                    continue
                if pace and not pacer.wait(frame.timestamp_s):
                    return True
                if not self._send(frame):
                    return True
                if settings.frame_count and self.stats.sent >= settings.frame_count:
                    return True
        finally:
            reader.close()
            self._reader = None
        return not (settings.loop or settings.kind.live)

    def _send(self, frame: SourceFrame) -> bool:
        settings = self.settings
        try:
            encoded = frame.encode(settings.width, settings.height, settings.jpeg_quality)
        except SourceError as e:
            # One bad frame (or image in a folder) is skipped; the stream goes on.
            self.stats.encode_failed += 1
            self._counts.count("frames_encode_failed")
            log.warning("%s", e)
            return True
        if self._stop.is_set() or not self._deliver(frame, encoded, self._stop):
            return False
        self.stats.sent += 1
        return True

    def _state(self, state: str, **details: Any) -> None:
        if state in ("streaming", "reconnecting", "finished"):
            log.info(
                "source %s: %s %s",
                redact(self.settings.url),
                state,
                " ".join(f"{k}={v}" for k, v in details.items()),
            )
        self._on_state(state, details)
