"""Batch buffers in shared memory: decoder processes write tensors where inference reads them.

A ``SlotPool`` holds a few buffers (``count``) for one model input shape, each room for
``capacity`` frames. A batch takes a free slot, worker processes write its frames' tensors
into the slot's rows, inference reads the rows in place, and the slot is released for the
next batch. Only names and row numbers cross between processes, never pixels or tensors.

The encoded frames travel the same way: each slot of a shared pool has an input arena, also
shared memory, into which the batch's frames are copied, so that only offsets go through
the pipe. Sent through the pipe, 40 KB frames cost a decoder process about 40 us each in
reads and writes (benchmarks/stage_profile.py). An arena grows when a batch's frames do not
fit; the one it replaces is returned to be forgotten by the workers and unlinked.

Shared memory is a tmpfs (``/dev/shm``; 64 MiB in a container unless its ``ShmSize`` says
otherwise) whose pages are taken when written: a write past its end kills the process with
SIGBUS. So every buffer is made only when the tmpfs has room for it and a margin, and
``SharedMemoryFullError`` says when it has not; the decoder then decodes that batch in threads.

The decode threads use the same pool in the module's own memory (``shared=False``): the
frames' tensors are written where ONNX Runtime reads them there too, rather than stacked into
a batch on the event loop (for MobileNetV2, a 4.8 MB copy per batch of 8, under the GIL).

The pool is bounded (a batch waits for a free slot), and its memory is returned to the
system by ``close`` once every slot is back (a model with another input shape, or a larger
``max_batch``, gets a new pool and the old one is closed when its last batch is done).
"""

from __future__ import annotations

import asyncio
import shutil
from collections import deque
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from classifier.preprocess import FloatArray

SHM_DIR = "/dev/shm"
SHM_MARGIN_BYTES = 8 << 20


class SharedMemoryFullError(Exception):
    """The shared-memory tmpfs has no room for a buffer this size."""


def _check_room(nbytes: int) -> None:
    free = shutil.disk_usage(SHM_DIR).free
    if nbytes + SHM_MARGIN_BYTES > free:
        raise SharedMemoryFullError(
            f"{nbytes} bytes of shared memory wanted, {free} free in {SHM_DIR}"
        )


def _shared(nbytes: int) -> SharedMemory:
    _check_room(nbytes)
    return SharedMemory(create=True, size=max(nbytes, 1))


class SlotPool:
    def __init__(
        self, shape: tuple[int, ...], capacity: int, count: int = 3, shared: bool = True
    ) -> None:
        self.shape = shape
        self.capacity = capacity
        nbytes = int(np.prod(shape)) * capacity * np.dtype(np.float32).itemsize
        if shared:
            _check_room(nbytes * count)  # all of them, or none made
        self.blocks = (
            [SharedMemory(create=True, size=max(nbytes, 1)) for _ in range(count)] if shared else []
        )
        self._arrays = (
            [np.ndarray((capacity, *shape), dtype=np.float32, buffer=b.buf) for b in self.blocks]
            if shared
            else [np.empty((capacity, *shape), dtype=np.float32) for _ in range(count)]
        )
        self._count = count
        self._arenas: list[SharedMemory | None] = [None] * count
        self._free: deque[int] = deque(range(count))
        self._available = asyncio.Event()
        self._available.set()
        self.retired = False
        self.closed = False
        # Told when the buffers are gone, so other processes can drop their mappings.
        self.on_close: Callable[[SlotPool], None] | None = None

    @property
    def names(self) -> list[str]:
        """Every shared buffer of the pool: tensor blocks and input arenas."""
        return [b.name for b in self.blocks] + [a.name for a in self._arenas if a is not None]

    def arena(self, slot: int, nbytes: int) -> tuple[SharedMemory, str | None]:
        """The slot's input arena, at least ``nbytes`` large, and the name of the arena it
        replaced (None if none), which other processes should forget; it is unlinked here."""
        current = self._arenas[slot]
        if current is not None and current.size >= nbytes:
            return current, None
        # Twice what is needed: a batch of slightly larger frames need not grow it again.
        grown = _shared(max(2 * nbytes, 1 << 16))
        self._arenas[slot] = grown
        if current is None:
            return grown, None
        replaced = current.name
        current.close()
        current.unlink()
        return grown, replaced

    @property
    def in_use(self) -> int:
        return self._count - len(self._free)

    def fits(self, shape: tuple[int, ...], frames: int) -> bool:
        return not self.retired and shape == self.shape and frames <= self.capacity

    async def acquire(self) -> int:
        while not self._free:
            self._available.clear()
            await self._available.wait()
        return self._free.popleft()

    def array(self, slot: int) -> FloatArray:
        return self._arrays[slot]

    def release(self, slot: int) -> None:
        self._free.append(slot)
        self._available.set()
        if self.retired and self.in_use == 0:
            self.close()

    def retire(self) -> None:
        """No new batches; closes itself when the last slot comes back."""
        self.retired = True
        if self.in_use == 0:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._arrays.clear()
        for block in self.blocks + [a for a in self._arenas if a is not None]:
            block.close()
            block.unlink()
        if self.on_close is not None:
            self.on_close(self)


def attach(name: str) -> SharedMemory:
    """Opens a buffer the module's process created. Decoder processes are spawned by it and
    share its resource tracker, so the buffer stays registered once, to its creator, which
    unlinks it (unregistering here would make that unlink an error in the tracker)."""
    return SharedMemory(name=name)
