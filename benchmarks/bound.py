"""What the machine can do at best, measured in the same run as the pipeline.

- ``raw_best_fps``: ``InferenceSession.run`` on ready tensors, the best over batch sizes, the
  model loaded as the module loads it: into lanes (one single-threaded run per core at once,
  ``classifier.inference_lanes``) or one run at a time on every core. The other way is
  measured too and printed beside it, so a better way the module does not take is seen;
- ``decode_capacity_fps``: N worker processes (N = the cores the pipeline may use) decoding and
  preprocessing the same JPEG frames with the module's own functions, added up;
- the bound: where inference runs on the CPU it shares the cores with decoding, so
  ``1 / (1/raw + 1/decode)``; on a GPU ``min(raw, decode)``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.decode import decode_frame
from classifier.decode_limits import FrameLimits
from classifier.engine import EngineOptions, InferenceEngine
from classifier.frames import FrameMeta, FrameRequest
from classifier.model_spec import ModelSpec
from classifier.preprocess import Preprocessor

BATCHES = (1, 8, 32, 64)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class RawBest:
    fps: float
    how: str  # batch size and lanes
    provider: str
    other_fps: float  # the best of the way the module does not take (0: none on this provider)
    other_how: str


def raw_best_fps(model: Path, seconds: float, lanes: int | None = None) -> RawBest:
    """The best of each way to run the model; ``lanes`` as the module's ``INFERENCE_LANES``."""
    engine = InferenceEngine.from_path(model, EngineOptions(lanes=lanes))
    cores = usable_cores()
    other: InferenceEngine | None = None
    if engine.provider == "CPUExecutionProvider" and cores > 1:
        # The way not taken: every core for one run if the module took lanes, else lanes.
        other_options = EngineOptions(lanes=1) if engine.lanes > 1 else EngineOptions(lanes=cores)
        other = InferenceEngine.from_path(model, other_options)
    ours = _best_batch(engine, seconds)
    theirs = _best_batch(other, seconds) if other is not None else (0.0, "")
    return RawBest(ours[0], ours[1], engine.provider, theirs[0], theirs[1])


def _best_batch(engine: InferenceEngine, seconds: float) -> tuple[float, str]:
    lanes = engine.lanes
    best = (0.0, "")
    for batch in BATCHES:
        fps = _runs_at_once(engine, batch, lanes, seconds)
        how = f"batch {batch}" + (f" x {lanes} lanes" if lanes > 1 else " on every core")
        best = max(best, (fps, how))
    return best


def _runs_at_once(engine: InferenceEngine, batch: int, lanes: int, seconds: float) -> float:
    """Frames/s of ``lanes`` threads each running batches of ``batch`` on one session."""
    shape = Preprocessor(engine.model.spec.preprocessing).input_shape()
    session, name = engine.session, engine.session.get_inputs()[0].name
    tensor = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    session.run(None, {name: tensor})  # warm-up
    done = [0] * lanes
    started = time.perf_counter()

    def lane(i: int) -> None:
        while time.perf_counter() - started < seconds:
            session.run(None, {name: tensor})
            done[i] += batch

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def _decode_worker(
    spec_json: str,
    frames: list[bytes],
    seconds: float,
    start: float,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    import cv2

    cv2.setNumThreads(1)
    spec = ModelSpec.from_json(spec_json)
    pre = Preprocessor(spec.preprocessing)
    limits = FrameLimits()
    while time.time() < start:
        time.sleep(0.001)
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        request = FrameRequest(FrameMeta(frame_id="x"), frames[done % len(frames)])
        pre(decode_frame(request, limits, spec.preprocessing))
        done += 1
    out.put(done / (time.perf_counter() - began))


def decode_capacity_fps(
    spec: ModelSpec, frames: list[bytes], seconds: float, workers: int
) -> float:
    """Frames/s that ``workers`` processes decode and preprocess together, all at once."""
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    start = time.time() + 1.5  # after every worker has imported and warmed up
    processes = [
        context.Process(target=_decode_worker, args=(spec.to_json(), frames, seconds, start, out))
        for _ in range(workers)
    ]
    for p in processes:
        p.start()
    total = sum(out.get(timeout=seconds + 60) for _ in processes)
    for p in processes:
        p.join()
    return float(total)


def bound_fps(raw: float, decode: float, provider: str) -> float:
    if provider == "CPUExecutionProvider":
        return 1.0 / (1.0 / raw + 1.0 / decode)
    return min(raw, decode)
