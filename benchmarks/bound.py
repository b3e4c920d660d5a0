"""What the machine can do at best, measured in the same run as the pipeline.

- ``raw_best_fps``: ``InferenceSession.run`` on ready tensors, the best over batch sizes, with
  the session options the module uses;
- ``decode_capacity_fps``: N worker processes (N = the cores the pipeline may use) decoding and
  preprocessing the same JPEG frames with the module's own functions, added up;
- the bound: where inference runs on the CPU it shares the cores with decoding, so
  ``1 / (1/raw + 1/decode)``; on a GPU ``min(raw, decode)``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
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


def raw_best_fps(
    model: Path, seconds: float, options: EngineOptions | None = None
) -> tuple[float, int, str]:
    """(frames/s, batch, provider) of the best batch size."""
    engine = InferenceEngine.from_path(model, options or EngineOptions())
    shape = Preprocessor(engine.model.spec.preprocessing).input_shape()
    session, name = engine.session, engine.session.get_inputs()[0].name
    best = (0.0, 0)
    for batch in BATCHES:
        tensor = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
        session.run(None, {name: tensor})  # warm-up
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            session.run(None, {name: tensor})
            done += batch
        fps = done / (time.perf_counter() - started)
        best = max(best, (fps, batch))
    return best[0], best[1], engine.provider


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
