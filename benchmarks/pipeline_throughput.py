"""Throughput of the module's in-process pipeline beside raw ``InferenceSession.run``.

    python benchmarks/pipeline_throughput.py [--frames 2000] [--models default,mobilenetv2]

For each model and batch size, in the same run and interleaved (the machine is shared and
noisy, so ratios within one run are what counts):
- raw: ``InferenceSession.run`` on ready-made float tensors of that batch size;
- pipeline: 640x480 JPEG messages through intake -> decode -> preprocess -> batch -> infer ->
  JSON serialisation, with ``max_batch`` equal to that batch size and the ``block`` overflow
  policy (nothing dropped), fed as fast as the pipeline takes them.
Prints a table with the machine's description; ``--markdown`` prints it for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

import cv2
import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.models import ensure_model
from classifier.engine import EngineOptions, InferenceEngine
from classifier.frame_queue import OverflowPolicy
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.pipeline import Outcome, Pipeline, PipelineConfig
from classifier.predictions import Prediction
from edge_module.hub import InboundMessage


@dataclass
class Row:
    model: str
    batch: int
    raw_fps: float
    pipeline_fps: float
    stages: dict[str, float]


def camera_jpegs(count: int, width: int = 640, height: int = 480) -> list[bytes]:
    """Synthetic-camera frames (the default model's own classes), JPEG quality 85."""
    import synthdata

    frames = []
    rng = np.random.default_rng(2024)
    for i in range(count):
        rgb = synthdata.render(i % synthdata.NUM_CLASSES, rng, width, height)
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
        )
        assert ok
        frames.append(data.tobytes())
    return frames


def raw_fps(engine: InferenceEngine, batch: int, seconds: float) -> float:
    from classifier.preprocess import Preprocessor

    shape = Preprocessor(engine.model.spec.preprocessing).input_shape()
    tensor = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    session, name = engine.session, engine.session.get_inputs()[0].name
    session.run(None, {name: tensor})  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {name: tensor})
        done += batch
    return done / (time.perf_counter() - started)


async def pipeline_fps(
    engine: InferenceEngine, batch: int, frames: list[bytes], count: int
) -> tuple[float, dict[str, float]]:
    config = PipelineConfig(
        max_batch=batch,
        max_wait_ms=2.0,
        queue_capacity=max(64, 4 * batch),
        overflow=OverflowPolicy.BLOCK,
    )
    metrics = Metrics()
    pipeline = Pipeline(ModelStore.serving(engine), config, metrics)
    finished = asyncio.Event()
    emitted = 0

    async def emit(outcome: Outcome) -> None:
        nonlocal emitted
        if isinstance(outcome, Prediction):
            outcome.to_message()  # serialisation is part of the measured path
        emitted += 1
        if emitted == count:
            finished.set()

    await pipeline.start(emit)
    started = time.perf_counter()
    for i in range(count):
        await pipeline.submit(
            InboundMessage("frames", frames[i % len(frames)], "image/jpeg", message_id=str(i))
        )
    await finished.wait()
    elapsed = time.perf_counter() - started
    await pipeline.stop(1.0)
    snapshot = metrics.snapshot()
    failed = sum(v for k, v in snapshot["counters"].items() if k.startswith("frames_failed"))
    if failed:
        raise RuntimeError(f"{failed} frames failed during the benchmark: {snapshot['counters']}")
    latency = snapshot["latency"]
    stages = {
        f"{stage} p50": latency[stage]["p50_ms"]
        for stage in ("decode", "preprocess", "inference_batch")
    }
    stages["total p99"] = latency["total"]["p99_ms"]
    return count / elapsed, stages


def run(
    models: list[str], batches: list[int], count: int, repeats: int, seconds: float
) -> list[Row]:
    frames = camera_jpegs(64)
    rows = []
    for model in models:
        engine = InferenceEngine.from_path(ensure_model(model), EngineOptions())
        engine.warm_up()
        for batch in batches:
            raws: list[float] = []
            pipes: list[float] = []
            stages: dict[str, float] = {}
            for _ in range(repeats):  # interleaved, so both see the same machine load
                raws.append(raw_fps(engine, batch, seconds))
                fps, stages = asyncio.run(pipeline_fps(engine, batch, frames, count))
                pipes.append(fps)
            rows.append(
                Row(model, batch, statistics.median(raws), statistics.median(pipes), stages)
            )
    return rows


def render(rows: list[Row], markdown: bool) -> str:
    best_raw = {m: max(r.raw_fps for r in rows if r.model == m) for m in {r.model for r in rows}}
    stage_names = list(rows[0].stages)
    header = [
        "model",
        "batch",
        "raw fps",
        "pipeline fps",
        "pipe/raw",
        "pipe/best raw",
        *(f"{s} ms" for s in stage_names),
    ]
    lines = []
    for r in rows:
        lines.append(
            [
                r.model,
                str(r.batch),
                f"{r.raw_fps:,.0f}",
                f"{r.pipeline_fps:,.0f}",
                f"{r.pipeline_fps / r.raw_fps:.2f}",
                f"{r.pipeline_fps / best_raw[r.model]:.2f}",
                *(f"{r.stages[s]:.2f}" for s in stage_names),
            ]
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*line) for line in lines)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="default,mobilenetv2")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--frames", type=int, default=2000, help="frames per pipeline measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as the module does
    models = args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    print(describe_machine())
    print(
        f"{args.frames} frames of 640x480 JPEG per pipeline run, median of {args.repeats} interleaved runs\n"
    )
    print(render(run(models, batches, args.frames, args.repeats, args.raw_seconds), args.markdown))


if __name__ == "__main__":
    main()
