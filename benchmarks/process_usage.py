"""Memory and CPU of processes, from /proc (Linux): what a benchmark attributes to whom.

RSS counts shared pages (the Python interpreter, ONNX Runtime's libraries) once per process;
PSS (``smaps_rollup``) shares them out, so the PSS of N module processes sums to what they
really take together. ``MemAvailable`` before and after is the machine's own view.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _kib_field(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> float:
    return (_kib_field(Path(f"/proc/{pid}/status"), "VmRSS") or 0) / 1024


def pss_mib(pid: int) -> float:
    return (_kib_field(Path(f"/proc/{pid}/smaps_rollup"), "Pss") or 0) / 1024


def mem_available_mib() -> float:
    return (_kib_field(Path("/proc/meminfo"), "MemAvailable") or 0) / 1024


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


@dataclass(frozen=True)
class Usage:
    rss_mib: float
    pss_mib: float
    cpu_s: float

    @classmethod
    def of(cls, pids: list[int]) -> Usage:
        return cls(
            sum(rss_mib(p) for p in pids),
            sum(pss_mib(p) for p in pids),
            sum(cpu_s(p) for p in pids),
        )
