"""The workload ``stage_profile.py`` measures and samples, in a process of its own.

    python -m benchmarks.stage_workload MODEL SECONDS DECODE_PROCESSES LANES

Warms up, then runs the bound benchmark's pipeline for about SECONDS and prints one line:
``workload fps=.. cpu_us_per_frame=.. module_us_per_frame=.. cores_busy=.. decoders=..
processes=0|1 lanes=..``, the CPU being this process's and its decoder processes' over the
measured run only, and ``module_us_per_frame`` this process's alone (the module's process:
intake, batching, inference, outcomes; with decoder threads, decoding too).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks.pipeline_bound import _model, run_pipeline
from benchmarks.pipeline_throughput import camera_jpegs
from classifier.decoding.choice import DEFAULT_NICE, decoder_processes
from classifier.engine import InferenceEngine
from classifier.frame_queue import OverflowPolicy
from classifier.inference_lanes import auto_lanes
from classifier.pipeline import PipelineConfig
from edge_module.hub import InboundMessage

BATCH = {"null": 64, "default": 32, "mobilenetv2": 8}


def _cpu_s(pid: int) -> float:
    """User + system CPU of one process (all its threads), and of its children still alive."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{each}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def _own_cpu_s() -> float:
    """This process's CPU, every thread, no child (to the clock tick's 10 ms, as /proc)."""
    times = os.times()
    return times.user + times.system


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main() -> int:
    name, seconds, processes_arg, lanes_arg = sys.argv[1:5]
    cv2.setNumThreads(1)  # as the module does
    requested = None if processes_arg == "auto" else int(processes_arg)
    lanes = None if lanes_arg == "auto" else int(lanes_arg)
    frames = camera_jpegs(64)
    batch = BATCH.get(name, 32)
    config = PipelineConfig(
        max_batch=batch,
        queue_capacity=max(256, 4 * batch),
        overflow=OverflowPolicy.BLOCK,
        decode_processes=requested,
        inference_lanes=auto_lanes(0) if lanes is None else lanes,
        decode_nice=DEFAULT_NICE,
    )
    with tempfile.TemporaryDirectory() as work:
        model = _model(name, Path(work))
        pre = InferenceEngine.from_path(model).model.spec.preprocessing
        processes = decoder_processes(requested, pre.width * pre.height)
        warm = asyncio.run(run_pipeline(model, frames, 1500, config, None, lanes))
        count = max(1000, int(warm.fps * float(seconds)))
        marks: dict[str, float] = {}

        async def measured() -> float:
            # From the first frame submitted (decoder processes started and imported by then)
            # to the moment the pipeline stops (before its decoder processes end).
            from classifier.pipeline import Pipeline

            submit, stop = Pipeline.submit, Pipeline.stop

            async def first_submit(self: Pipeline, message: InboundMessage) -> None:
                if "cpu_start" not in marks:
                    marks["cpu_start"], marks["start"] = _cpu_s(os.getpid()), time.perf_counter()
                    marks["own_start"] = _own_cpu_s()
                await submit(self, message)

            async def reading_stop(self: Pipeline, grace_s: float = 5.0) -> None:
                marks["cpu_end"], marks["end"] = _cpu_s(os.getpid()), time.perf_counter()
                marks["own_end"] = _own_cpu_s()
                await stop(self, grace_s)

            Pipeline.submit = first_submit  # type: ignore[method-assign]
            Pipeline.stop = reading_stop  # type: ignore[method-assign]
            run = await run_pipeline(model, frames, count, config, None, lanes)
            return run.fps

        fps = asyncio.run(measured())
        cpu = marks["cpu_end"] - marks["cpu_start"]
        elapsed = marks["end"] - marks["start"]
    print(
        f"workload fps={fps:.1f} cpu_us_per_frame={cpu / count * 1e6:.1f} "
        f"module_us_per_frame={(marks['own_end'] - marks['own_start']) / count * 1e6:.1f} "
        f"cores_busy={cpu / elapsed:.2f} decoders={processes or config.decode_workers} "
        f"processes={1 if processes else 0} lanes={config.inference_lanes}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
