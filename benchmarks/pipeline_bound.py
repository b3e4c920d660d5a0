"""The pipeline against the machine's bound, per model and provider; latency; memory; INT8.

    python benchmarks/pipeline_bound.py [--models default,mobilenetv2,null] [--frames 3000]

For each model, in one run: the bound's parts (``benchmarks/bound.py``: raw best batch
throughput, decode+preprocess capacity of N processes, N = the cores the pipeline may use)
and the pipeline's own throughput on the same 640x480 JPEG frames of the synthetic camera
(quality 85), fed as fast as it takes them with nothing dropped, each prediction serialised
to its JSON message. ``null`` is the colour test model (a mean per channel on 32x32): its row
is the cost of the pipeline itself. Prints, per model and provider:

    bound model=<name> provider=<p> pipeline_fps=<x> raw_best_fps=<r> decode_capacity_fps=<d> bound_fps=<b> ratio=<x/b>

then latency (frame arrival to prediction, in process) at 20 and 200 frames/s and at
saturation, the module process's RSS idle and under saturation, and INT8 beside fp32.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from benchmarks.bound import bound_fps, decode_capacity_fps, raw_best_fps, usable_cores
from benchmarks.machine import describe_machine
from benchmarks.models import ensure_model
from benchmarks.pipeline_throughput import camera_jpegs
from classifier.decode import decode_frame
from classifier.decode_limits import FrameLimits
from classifier.engine import EngineOptions, InferenceEngine
from classifier.frame_queue import OverflowPolicy
from classifier.frames import FrameMeta, FrameRequest
from classifier.hub import InboundMessage
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.pipeline import Outcome, Pipeline, PipelineConfig
from classifier.predictions import Prediction
from classifier.preprocess import Preprocessor


@dataclass
class Run:
    fps: float
    latencies_ms: list[float]
    rss_mib: float


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run_pipeline(
    model: Path, frames: list[bytes], count: int, config: PipelineConfig, rate_fps: float | None
) -> Run:
    """``count`` frames through the pipeline, as fast as it takes them or at ``rate_fps``."""
    engine = InferenceEngine.from_path(model, EngineOptions())
    engine.warm_up()
    pipeline = Pipeline(ModelStore.serving(engine), config, Metrics())
    done = asyncio.Event()
    arrived: dict[str, float] = {}
    latencies: list[float] = []
    peak = [0.0]

    async def emit(outcome: Outcome) -> None:
        if isinstance(outcome, Prediction):
            outcome.to_message()  # serialisation is part of the measured path
            latencies.append((time.perf_counter() - arrived[outcome.meta.frame_id]) * 1000)
        else:
            raise RuntimeError(f"frame failed during the benchmark: {outcome.error}")
        if len(latencies) == count:
            done.set()

    await pipeline.start(emit)
    try:
        started = time.perf_counter()
        for i in range(count):
            if rate_fps is not None:
                await asyncio.sleep(max(0.0, started + i / rate_fps - time.perf_counter()))
            frame_id = f"f{i}"
            arrived[frame_id] = time.perf_counter()
            await pipeline.submit(
                InboundMessage("frames", frames[i % len(frames)], "image/jpeg", message_id=frame_id)
            )
            if i % 256 == 0:
                peak[0] = max(peak[0], rss_mib())
        await done.wait()
        elapsed = time.perf_counter() - started
    finally:
        await pipeline.stop(5.0)
    return Run(count / elapsed, latencies, peak[0])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def best_pipeline(
    model: Path, frames: list[bytes], count: int, batches: list[int], processes: int
) -> tuple[float, int]:
    best = (0.0, 0)
    for batch in batches:
        config = PipelineConfig(
            max_batch=batch,
            queue_capacity=max(256, 4 * batch),
            overflow=OverflowPolicy.BLOCK,
            decode_processes=processes,
        )
        run = asyncio.run(run_pipeline(model, frames, count, config, None))
        best = max(best, (run.fps, batch))
    return best


def bound_rows(
    names: list[str], frames: list[bytes], args: argparse.Namespace, work: Path, processes: int
) -> None:
    cores = usable_cores()
    batches = [int(b) for b in args.batches.split(",")]
    for name in names:
        model = _model(name, work)
        spec = InferenceEngine.from_path(model).model.spec
        raw, raw_batch, provider = raw_best_fps(model, args.seconds)
        decode = decode_capacity_fps(spec, frames, args.seconds, cores)
        fps, batch = best_pipeline(model, frames, args.frames, batches, processes)
        bound = bound_fps(raw, decode, provider)
        print(
            f"bound model={name} provider={provider} pipeline_fps={fps:.0f} "
            f"raw_best_fps={raw:.0f} decode_capacity_fps={decode:.0f} bound_fps={bound:.0f} "
            f"ratio={fps / bound:.2f}"
        )
        print(
            f"  (raw best at batch {raw_batch}; pipeline best at max_batch {batch}; "
            f"decode in {f'{processes} processes' if processes else 'threads'})",
            flush=True,
        )


def latency_and_memory(model: Path, frames: list[bytes], seconds: float) -> None:
    """p50/p99 at 20 and 200 frames/s and at saturation, against the no-wait goal."""
    engine = InferenceEngine.from_path(model, EngineOptions())
    engine.warm_up()
    spec = engine.model.spec
    pre = Preprocessor(spec.preprocessing)
    one: list[float] = []
    infer: list[float] = []
    for i in range(200):
        started = time.perf_counter()
        request = FrameRequest(FrameMeta(frame_id="x"), frames[i % len(frames)])
        tensor = pre(decode_frame(request, FrameLimits(), spec.preprocessing))
        one.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        engine.run(tensor[None, ...])
        infer.append((time.perf_counter() - started) * 1000)
    floor = statistics.median(one) + statistics.median(infer)
    print(
        f"latency floor: decode+preprocess p50 {statistics.median(one):.2f} ms + batch-1 "
        f"inference p50 {statistics.median(infer):.2f} ms = {floor:.2f} ms; goal p50 <= {floor + 1:.2f} ms"
    )
    config = PipelineConfig(max_batch=32, queue_capacity=256, overflow=OverflowPolicy.BLOCK)
    idle = rss_mib()
    for label, rate, count in (
        ("20 fps", 20.0, int(20 * seconds)),
        ("200 fps", 200.0, int(200 * seconds)),
        ("saturation", None, 3000),
    ):
        run = asyncio.run(run_pipeline(model, frames, count, config, rate))
        goal = (
            ""
            if rate != 20.0
            else f" (goal {'met' if _p(run.latencies_ms, 0.5) <= floor + 1 else 'MISSED'})"
        )
        print(
            f"latency {label:>10}: {run.fps:7.0f} fps, p50 {_p(run.latencies_ms, 0.5):6.2f} ms, "
            f"p99 {_p(run.latencies_ms, 0.99):7.2f} ms{goal}; peak RSS {run.rss_mib:.0f} MiB",
            flush=True,
        )
    print(f"RSS with the pipeline idle (model loaded, nothing queued): {idle:.0f} MiB")


def int8_side_by_side(frames: list[bytes], args: argparse.Namespace, work: Path) -> None:
    from cloud_tools.quantize import quantize_model, synthetic_tensors

    fp32 = ensure_model("default")
    int8 = work / "default-int8.onnx"
    pre = Preprocessor(InferenceEngine.from_path(fp32).model.spec.preprocessing)
    calibration, _ = synthetic_tensors(pre, "train", 512)
    held, labels = synthetic_tensors(pre, "test", 10_000)
    report = quantize_model(fp32, int8, (calibration, "synthetic"), (held, labels, "synthetic"))
    batches = [int(b) for b in args.batches.split(",")]
    for name, model in (("fp32", fp32), ("int8", int8)):
        raw, raw_batch, _ = raw_best_fps(model, args.seconds)
        fps, batch = best_pipeline(model, frames, args.frames, batches, 0)
        accuracy = report.fp32_accuracy if name == "fp32" else report.int8_accuracy
        print(
            f"int8 check: default {name}: raw best {raw:.0f} fps (batch {raw_batch}), "
            f"pipeline {fps:.0f} fps (max_batch {batch}), held-out accuracy {accuracy:.4f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="default,mobilenetv2,null")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--batches", default="8,32,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="per raw and decode measurement")
    parser.add_argument("--decode-processes", type=int, default=0, help="0: threads")
    parser.add_argument("--latency", action="store_true", help="latency and memory, default model")
    parser.add_argument("--int8", action="store_true", help="INT8 beside fp32, default model")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # as the module does
    frames = camera_jpegs(64)
    cores = usable_cores()
    print(describe_machine())
    print(f"pipeline may use {cores} cores; decode capacity measured with {cores} processes\n")
    with tempfile.TemporaryDirectory() as work:
        bound_rows(args.models.split(","), frames, args, Path(work), args.decode_processes)
        if args.latency:
            latency_and_memory(ensure_model("default"), frames, 10.0)
        if args.int8:
            int8_side_by_side(frames, args, Path(work))
    return 0


def _model(name: str, work: Path) -> Path:
    return ensure_model(name) if name != "null" else _null_model(work)


def _null_model(work: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.tiny_models import write_colour_model

    return write_colour_model(work / "null.onnx")


if __name__ == "__main__":
    sys.exit(main())
