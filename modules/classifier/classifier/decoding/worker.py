"""The body of a decoder process: decode and preprocess frames into shared batch buffers.

Runs in a process of its own (spawned, so it shares no threads or locks with the module), so
its Python work never waits for the module's GIL. Messages on its pipe:

    ("decode", task, block name, (capacity, *shape), preprocessing, limits, arena name,
     [(row, frame id, offset, size, raw layout or None)])
        -> ("done", task, [FrameResult, ...])   tensors written into the block's rows
    ("forget", [block names])                   a pool was closed: drop the mappings
    ("stop",)                                   exit
"""

from __future__ import annotations

import contextlib
import gc
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from classifier.decode_limits import FrameLimits
from classifier.decoding.choice import lower_priority
from classifier.decoding.prepared import FrameResult, prepare_one
from classifier.decoding.shared_slots import attach
from classifier.frames import FrameMeta, FrameRequest
from classifier.model_spec import Preprocessing
from classifier.preprocess import Preprocessor


def serve(connection: Connection, nice: int = 0) -> None:
    import cv2

    # One thread per process: the processes are the parallelism.
    cv2.setNumThreads(1)
    lower_priority(nice)
    # What is imported by now lives as long as the process: out of the collector's scans,
    # which the per-frame objects (all freed by reference counting) would otherwise set off
    # (0.6% of the near-null pipeline's CPU, docs/benchmarks.md section 10b).
    gc.freeze()
    blocks: dict[str, SharedMemory] = {}
    preprocessors: dict[Preprocessing, Preprocessor] = {}
    while True:
        try:
            message: Any = connection.recv()
        except (EOFError, OSError):
            break
        kind = message[0]
        if kind == "stop":
            break
        if kind == "forget":
            for name in message[1]:
                block = blocks.pop(name, None)
                if block is not None:
                    block.close()
            continue
        _, task, name, shape, spec, limits, arena_name, items = message
        block = _attached(blocks, name)
        arena = _attached(blocks, arena_name).buf
        assert arena is not None  # attached and open until a "forget"
        rows = np.ndarray(shape, dtype=np.float32, buffer=block.buf)
        preprocessor = preprocessors.get(spec)
        if preprocessor is None:
            preprocessor = preprocessors[spec] = Preprocessor(spec)
        results: list[FrameResult] = [
            _prepare(
                # A copy of the frame's bytes: the header and EXIF readers want bytes, and
                # nothing may keep a view of the arena past a "forget".
                FrameRequest(FrameMeta(frame_id), bytes(arena[at : at + size]), raw),
                preprocessor,
                limits,
                rows[row],
            )
            for row, frame_id, at, size, raw in items
        ]
        del rows, arena  # no view may outlive a "forget"
        connection.send(("done", task, results))
    for block in blocks.values():
        with contextlib.suppress(BufferError):
            block.close()


def _attached(blocks: dict[str, SharedMemory], name: str) -> SharedMemory:
    block = blocks.get(name)
    if block is None:
        block = blocks[name] = attach(name)
    return block


def _prepare(
    request: FrameRequest, preprocessor: Preprocessor, limits: FrameLimits, out: np.ndarray
) -> FrameResult:
    return prepare_one(request, preprocessor, limits, out)[1]
