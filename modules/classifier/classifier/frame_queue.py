"""The bounded frame queue between intake and the batcher, with a named overflow policy.

- ``drop_oldest``: live video. When full, the oldest waiting frame is dropped (and reported):
  a late answer about an old frame is worth less than a prompt one about the newest.
- ``drop_newest``: keep what is queued, refuse the arrival (and report it).
- ``block``: batch scoring. Intake waits for room, which pushes back on the sender.

An arrival may narrow what ``drop_oldest`` evicts for it (``evictable``): the entries of one
JSON scoring request evict only frames of their own source, so one large request cannot
flush other cameras' frames out of the queue; with nothing of its own to evict, the arrival
itself is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class OverflowPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


class FrameQueue(Generic[T]):
    def __init__(
        self,
        capacity: int,
        policy: OverflowPolicy,
        on_drop: Callable[[T], None],
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.policy = policy
        self.dropped = 0
        self._items: deque[T] = deque()
        self._on_drop = on_drop
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T, evictable: Callable[[T], bool] | None = None) -> None:
        if self.policy is OverflowPolicy.BLOCK:
            while len(self._items) >= self.capacity:
                self._not_full.clear()
                await self._not_full.wait()
        elif len(self._items) >= self.capacity:
            victim = self._victim(item, evictable)
            self.dropped += 1
            self._on_drop(victim)
            if victim is item:
                return
        self._items.append(item)
        self._not_empty.set()

    def _victim(self, item: T, evictable: Callable[[T], bool] | None) -> T:
        if self.policy is OverflowPolicy.DROP_NEWEST:
            return item
        if evictable is None:
            return self._items.popleft()
        for index, queued in enumerate(self._items):
            if evictable(queued):
                del self._items[index]
                return queued
        return item

    async def get_batch(
        self,
        max_items: int,
        max_wait_s: float,
        keep_filling: Callable[[], bool] = lambda: True,
    ) -> list[T]:
        """Waits for one item, then for the batch to fill: up to ``max_wait_s`` more, and only
        while ``keep_filling()`` says waiting is free (the stage after this one is busy anyway).
        ``wake`` makes a waiting call look at ``keep_filling`` again at once."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        deadline = time.monotonic() + max_wait_s
        while len(self._items) < max_items and keep_filling():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._not_empty.clear()
            try:
                await asyncio.wait_for(self._not_empty.wait(), remaining)
            except TimeoutError:
                break
        batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
        self._not_full.set()
        return batch

    def wake(self) -> None:
        """A waiting ``get_batch`` re-checks its condition (say, the next stage became free)."""
        self._not_empty.set()

    def drain(self) -> list[T]:
        """Takes everything still queued (used at shutdown to report unscored frames)."""
        items = list(self._items)
        self._items.clear()
        self._not_full.set()
        return items
