"""A module's output lines with the time each arrived, kept beside its raw ``<module>.log``.

The raw log holds the bytes exactly as the module wrote them (plus the runtime's own notes),
for people and the existing readers; edgeAgent's log methods need each line's time, which a
process does not write reliably, so the output pump stamps every line as it arrives, as
Docker's json-file driver does. One line per output line::

    2026-12-06T19:54:51.123456Z <6> 2026-12-06 19:54:51.120 +00:00 [INF] classifier - ...

Rotation policy ``ROTATE_KEEP_ONE``: when appending would take the file past ``max_bytes`` it
is renamed to ``<name>.1`` (replacing the previous one) and a new file starts, so the disk
holds at most twice ``max_bytes`` and reads see the newest lines (as Docker's ``max-size``
with ``max-file: 2``).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from simulator.device.supervisor import LogLine

__all__ = ["DEFAULT_MAX_BYTES", "ROTATE_KEEP_ONE", "TimestampedLineLog", "timestamped_log_path"]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
ROTATE_KEEP_ONE = "rotate-keep-one"
# RFC 3339 with microseconds and "Z": fixed width, so the text starts at a known column.
_STAMP_CHARS = len("2026-12-06T19:54:51.123456Z")


def timestamped_log_path(raw_log: Path) -> Path:
    """``classifier.log`` -> ``classifier.timestamped.log``, in the same folder."""
    return raw_log.with_name(f"{raw_log.stem}.timestamped{raw_log.suffix}")


def _stamp(moment: datetime) -> bytes:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


class TimestampedLineLog:
    """Appended from the event loop (small synchronous writes, like the raw log's); read from
    a worker thread. The lock keeps a read from seeing a rotation halfway."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    @property
    def rotated_path(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def append(self, lines: Sequence[bytes], at: datetime) -> None:
        if not lines:
            return
        stamp = _stamp(at)
        data = b"".join(stamp + b" " + line.rstrip(b"\r") + b"\n" for line in lines)
        with self._lock:
            file = self._open()
            if file.tell() > 0 and file.tell() + len(data) > self.max_bytes:
                file.close()
                os.replace(self.path, self.rotated_path)
                self._file = None
                file = self._open()
            file.write(data)

    def read(
        self, since: datetime | None, until: datetime | None, tail: int | None
    ) -> list[LogLine]:
        """Lines stamped ``since <= t <= until``, oldest first, then the last ``tail``."""
        with self._lock:
            chunks = [_read_or_empty(self.rotated_path), _read_or_empty(self.path)]
        lines: list[LogLine] = []
        for chunk in chunks:
            lines.extend(_parse(chunk))
        # Stamps only grow (one clock, one writer), so the bounds cut a sorted list.
        stamps = [line.timestamp for line in lines]
        start = bisect.bisect_left(stamps, since) if since is not None else 0
        end = bisect.bisect_right(stamps, until) if until is not None else len(lines)
        selected = lines[start:end]
        if tail is not None:
            selected = selected[max(0, len(selected) - tail) :]
        return selected

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _open(self) -> BinaryIO:
        if self._file is None or self._file.closed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab", buffering=0)
        return self._file


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _parse(chunk: bytes) -> list[LogLine]:
    lines: list[LogLine] = []
    # A last line without its newline is still being written: it is left for the next read.
    for raw in chunk.split(b"\n")[:-1]:
        stamp, text = raw[:_STAMP_CHARS], raw[_STAMP_CHARS + 1 :]
        try:
            moment = datetime.fromisoformat(stamp.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            continue  # not written by us (the file was edited): skipped rather than guessed
        lines.append(LogLine(moment, text.decode("utf-8", errors="replace")))
    return lines
