"""The frame queue is bounded; each overflow policy does what its name says and counts drops."""

from __future__ import annotations

import asyncio

import pytest

from classifier.frame_queue import FrameQueue, OverflowPolicy


async def test_drop_oldest_keeps_the_newest_frames() -> None:
    dropped: list[int] = []
    queue = FrameQueue(3, OverflowPolicy.DROP_OLDEST, dropped.append)
    for i in range(5):
        await queue.put(i)
    assert dropped == [0, 1] and queue.dropped == 2
    assert await queue.get_batch(10, 0) == [2, 3, 4]


async def test_drop_newest_keeps_what_was_queued() -> None:
    dropped: list[int] = []
    queue = FrameQueue(3, OverflowPolicy.DROP_NEWEST, dropped.append)
    for i in range(5):
        await queue.put(i)
    assert dropped == [3, 4]
    assert await queue.get_batch(10, 0) == [0, 1, 2]


async def test_block_waits_for_room_and_drops_nothing() -> None:
    queue: FrameQueue[int] = FrameQueue(2, OverflowPolicy.BLOCK, lambda _: pytest.fail("dropped"))
    await queue.put(1)
    await queue.put(2)
    third = asyncio.create_task(queue.put(3))
    await asyncio.sleep(0.01)
    assert not third.done()
    assert await queue.get_batch(1, 0) == [1]
    await asyncio.wait_for(third, 1)
    assert await queue.get_batch(5, 0) == [2, 3]


async def test_batch_closes_at_max_items_without_waiting() -> None:
    queue: FrameQueue[int] = FrameQueue(100, OverflowPolicy.BLOCK, lambda _: None)
    for i in range(10):
        await queue.put(i)
    assert await asyncio.wait_for(queue.get_batch(4, 60), 1) == [0, 1, 2, 3]


async def test_batch_closes_at_max_wait_with_what_arrived() -> None:
    queue: FrameQueue[int] = FrameQueue(100, OverflowPolicy.BLOCK, lambda _: None)
    await queue.put(1)
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, lambda: asyncio.ensure_future(queue.put(2)))
    assert await queue.get_batch(8, 0.1) == [1, 2]


async def test_drain_returns_everything_left() -> None:
    queue: FrameQueue[int] = FrameQueue(10, OverflowPolicy.BLOCK, lambda _: None)
    for i in range(3):
        await queue.put(i)
    assert queue.drain() == [0, 1, 2] and len(queue) == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FrameQueue(0, OverflowPolicy.BLOCK, lambda _: None)
