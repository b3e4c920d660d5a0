"""Decoding in a thread pool of the module's own process: the decoders release the GIL.

Fine on a small machine: no hand-off between processes, and the cores are few enough that
the Python parts of decoding and the event loop rarely queue for the GIL. ``processes.py``
takes over where they would.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from classifier.decode_limits import FrameLimits
from classifier.decoding.batch import DecodedBatch
from classifier.decoding.choice import lower_priority
from classifier.decoding.prepared import prepare_frames
from classifier.frames import FrameRequest
from classifier.model_store import ServingModel


class ThreadDecoder:
    def __init__(self, workers: int, limits: FrameLimits, nice: int = 0) -> None:
        self.workers = workers
        self.limits = limits
        self._pool = ThreadPoolExecutor(
            workers, "decode", initializer=lower_priority, initargs=(nice,)
        )

    async def start(self) -> None:
        pass

    async def decode(
        self, model: ServingModel, requests: list[FrameRequest], picked_s: float
    ) -> DecodedBatch:
        # One call per chunk rather than per frame keeps the hand-off overhead low.
        loop = asyncio.get_running_loop()
        size = -(-len(requests) // self.workers)
        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._pool, prepare_frames, c, model.preprocessor, self.limits, picked_s
                )
                for c in chunks
            )
        )
        return DecodedBatch([p for part in parts for p in part])

    async def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
