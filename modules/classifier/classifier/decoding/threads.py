"""Decoding in a thread pool of the module's own process: the decoders release the GIL.

Fine on a small machine: no hand-off between processes, and the cores are few enough that
the Python parts of decoding and the event loop rarely queue for the GIL. ``processes.py``
takes over where they would (``choice.py``). Tensors are written into a batch buffer
(``shared_slots.SlotPool`` in private memory) that ONNX Runtime reads in place.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from classifier.decode_limits import FrameLimits
from classifier.decoding.batch import DecodedBatch
from classifier.decoding.choice import lower_priority
from classifier.decoding.prepared import prepare_frames
from classifier.decoding.shared_slots import SlotPool
from classifier.frames import FrameRequest
from classifier.model_store import ServingModel
from classifier.preprocess import FloatArray


class ThreadDecoder:
    def __init__(
        self,
        workers: int,
        limits: FrameLimits,
        nice: int = 0,
        capacity: int = 8,
        in_flight: int = 5,
    ) -> None:
        self.workers = workers
        self.limits = limits
        # Frames per buffer (a larger batch gets a larger pool), and batches that may hold a
        # buffer at once, as ProcessDecoder's pools.
        self.capacity = capacity
        self.in_flight = in_flight
        self._pool = ThreadPoolExecutor(
            workers, "decode", initializer=lower_priority, initargs=(nice,)
        )
        self._buffers: SlotPool | None = None

    async def start(self) -> None:
        pass

    async def decode(
        self, model: ServingModel, requests: list[FrameRequest], picked_s: float
    ) -> DecodedBatch:
        buffers = self._buffers_for(model.preprocessor.input_shape(), len(requests))
        slot = await buffers.acquire()
        block = buffers.array(slot)
        try:
            # One call per chunk rather than per frame keeps the hand-off overhead low; each
            # chunk writes its frames' tensors into its own rows of the batch's buffer.
            loop = asyncio.get_running_loop()
            size = -(-len(requests) // self.workers)
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._pool,
                        prepare_frames,
                        requests[start : start + size],
                        model.preprocessor,
                        self.limits,
                        picked_s,
                        partial(_row, block, start),
                    )
                    for start in range(0, len(requests), size)
                )
            )
        except BaseException:
            buffers.release(slot)
            raise
        return DecodedBatch(
            [p for part in parts for p in part], block, partial(buffers.release, slot)
        )

    def _buffers_for(self, shape: tuple[int, ...], frames: int) -> SlotPool:
        current = self._buffers
        if current is not None and current.fits(shape, frames):
            return current
        if current is not None:
            current.retire()  # freed when its last batch is done
        self._buffers = SlotPool(shape, max(frames, self.capacity), self.in_flight, shared=False)
        return self._buffers

    async def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _row(block: FloatArray, start: int, index: int) -> FloatArray:
    row: FloatArray = block[start + index]
    return row
