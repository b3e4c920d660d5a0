"""Threads or processes for the decode stage (``DECODE_PROCESSES=auto``), and their priority.

Threads, on machines with fewer than ``PROCESSES_FROM_CORES`` usable cores: there, threads
decode as fast as processes or faster once the pipeline's own Python is cut down (the
decoders' C parts release the GIL; section 10 of docs/benchmarks.md, 2 cores), answer a lone
frame sooner (no pipe between processes: 1.7 against 2.5 ms at 20 frames/s), and cost no
memory (two decoder processes take 145 MiB). With more cores the GIL becomes the limit: the
Python parts of decoding and the event loop's work, about 60 us a frame under the one lock,
cap threads near 16,000 frames/s whatever the cores, while processes add a core's worth of
decoding each. Processes then get all cores but one, which the event loop and inference keep.
This rule is from the core count, not measured at start-up: a measurement would take the
cores from the frames already arriving, and this machine has only 2 cores to check it on.

Decoders run at a lower priority than the rest (``DECODE_NICE``, default 10): when inference
and decoding want the same core, inference goes first, because ONNX Runtime's threads wait
for each other at the end of every operator and one of them preempted holds up all; decoding
takes the gaps, and the batches decoded ahead keep inference fed. Inside a container the
priority is relative only to the container's own processes.
"""

from __future__ import annotations

import contextlib
import os
import threading

PROCESSES_FROM_CORES = 4
MAX_AUTO_PROCESSES = 16
DEFAULT_NICE = 10


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def decoder_processes(requested: int | None, cores: int | None = None) -> int:
    """Decoder processes to start (0: threads); ``requested`` None is auto."""
    if requested is not None:
        return requested
    cores = usable_cores() if cores is None else cores
    if cores < PROCESSES_FROM_CORES:
        return 0
    return min(cores - 1, MAX_AUTO_PROCESSES)


def lower_priority(nice: int) -> None:
    """The calling thread (a decode thread, or a decoder process's only thread) yields to the
    module's other threads by ``nice`` steps; raising one's own nice value needs no privilege."""
    if nice > 0:
        # A sandbox that forbids it leaves decoding only less polite.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
