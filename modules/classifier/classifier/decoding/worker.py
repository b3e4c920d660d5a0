"""The body of a decoder process: decode and preprocess frames into shared batch buffers.

Runs in a process of its own (spawned, so it shares no threads or locks with the module), so
its Python work never waits for the module's GIL. Messages on its pipe:

    ("decode", task, block name, (capacity, *shape), setup, arena name,
     [(row, frame id, offset, size, raw layout or None)])
        -> ("done", task, [FrameResult, ...])   tensors written into the block's rows
    ("forget", [block names])                   a pool was closed: drop the mappings
    ("stop",)                                   exit

``setup`` is the preprocessing and the frame limits, pickled once by the module's process
(``setup_bytes``): unpickling them afresh for every chunk cost about 9 us a message on each
side (their enums), and a worker holds on to the few it has seen.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
from functools import lru_cache
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

# Setups (a model's preprocessing with the frame limits) a worker keeps: the model that serves,
# the one before it while its last batches are decoded, and room for a few swaps.
MAX_SETUPS = 8


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
    setups: dict[bytes, tuple[Preprocessor, FrameLimits]] = {}
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
        _, task, name, shape, setup, arena_name, items = message
        preprocessor, limits = _set_up(setups, setup)
        block = _attached(blocks, name)
        arena = _attached(blocks, arena_name).buf
        assert arena is not None  # attached and open until a "forget"
        rows = np.ndarray(shape, dtype=np.float32, buffer=block.buf)
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


@lru_cache(maxsize=MAX_SETUPS)
def setup_bytes(spec: Preprocessing, limits: FrameLimits) -> bytes:
    """What a decode message carries of how to decode (see the module doc)."""
    return pickle.dumps((spec, limits))


def _set_up(
    setups: dict[bytes, tuple[Preprocessor, FrameLimits]], setup: bytes
) -> tuple[Preprocessor, FrameLimits]:
    known = setups.get(setup)
    if known is None:
        spec, limits = pickle.loads(setup)
        known = setups[setup] = (Preprocessor(spec), limits)
        if len(setups) > MAX_SETUPS:  # models come and go over a long run
            del setups[next(iter(setups))]
    return known


def _attached(blocks: dict[str, SharedMemory], name: str) -> SharedMemory:
    block = blocks.get(name)
    if block is None:
        block = blocks[name] = attach(name)
    return block


def _prepare(
    request: FrameRequest, preprocessor: Preprocessor, limits: FrameLimits, out: np.ndarray
) -> FrameResult:
    return prepare_one(request, preprocessor, limits, out)[1]
