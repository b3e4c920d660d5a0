"""Threads or processes for the decode stage (``DECODE_PROCESSES=auto``), and their priority.

Processes, one per usable core (at most ``MAX_AUTO_PROCESSES``), on any machine with two
cores or more, when the model the module starts with is small (an input of at most
``inference_lanes.MAX_LANE_INPUT_PIXELS``): then decoding is most of a frame's work, and on
the 2-core machine of docs/benchmarks.md (section 10) processes decode the near-null model's
frames 15-20% faster than threads (the GIL no longer serialises the Python parts of decoding
with the event loop) and match them on the default model, once the frames reach them through
shared memory instead of the pipe. For a large model, inference is most of the work and
threads were faster: MobileNetV2 369 against 338-342 frames/s in alternating runs, the
decoder processes' memory traffic slowing the inference beside them. With more cores the
GIL caps threads near 16,000 frames/s whatever the cores, while processes add a core's worth
of decoding each; the choice is made once, when the pipeline starts. Batches of one or two frames are still decoded in threads
(``processes.IN_PROCESS_BATCH``), so a quiet camera's frames do not wait for two pipe hops.
The price is memory: about 70 MiB per process; ``DECODE_PROCESSES=0`` keeps decoding in two
threads where memory is tighter than CPU. The rule is from the core count, not measured at
start-up: a measurement would take the cores from frames already arriving.

Decoders run at a lower priority than the rest (``DECODE_NICE``, default 10): when inference
and decoding want the same core, inference goes first, because ONNX Runtime's threads wait
for each other at the end of every operator and one of them preempted holds up all; decoding
takes the gaps, and the batches decoded ahead keep inference fed. The event loop too goes
first, so processes as many as the cores do not starve it. Inside a container the priority
is relative only to the container's own processes.
"""

from __future__ import annotations

import contextlib
import os
import threading

from classifier.inference_lanes import MAX_LANE_INPUT_PIXELS, usable_cores

PROCESSES_FROM_CORES = 2
MAX_AUTO_PROCESSES = 16
DEFAULT_NICE = 10


def decoder_processes(requested: int | None, input_pixels: int, cores: int | None = None) -> int:
    """Decoder processes to start (0: threads) for a model with ``input_pixels``;
    ``requested`` None is auto."""
    if requested is not None:
        return requested
    cores = usable_cores() if cores is None else cores
    if cores < PROCESSES_FROM_CORES or input_pixels > MAX_LANE_INPUT_PIXELS:
        return 0
    return min(cores, MAX_AUTO_PROCESSES)


def lower_priority(nice: int) -> None:
    """The calling thread (a decode thread, or a decoder process's only thread) yields to the
    module's other threads by ``nice`` steps; raising one's own nice value needs no privilege."""
    if nice > 0:
        # A sandbox that forbids it leaves decoding only less polite.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
