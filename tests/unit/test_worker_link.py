"""Messages to a decoder process: written from the event loop only while its socket surely has
room, in order and whole whichever way each one goes.

A real socket pair (as ``multiprocessing.Pipe`` makes for the workers); the test reads the
worker's end itself, or leaves it unread as a worker busy with a long chunk would.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from classifier.decoding.worker_link import MESSAGE_OVERHEAD_BYTES, WorkerDiedError, WorkerLink


@pytest.fixture
def ends() -> Iterator[tuple[WorkerLink, Connection]]:
    """A link, and the worker's end of its socket."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    # The process is only held by the link: never started here.
    link = WorkerLink.to(multiprocessing.get_context("spawn").Process(), ours)
    yield link, theirs
    link.close()
    theirs.close()


def message(task: int) -> tuple[str, int, bytes]:
    return ("decode", task, bytes([task % 256]) * 2000)


async def test_a_worker_that_reads_nothing_never_blocks_the_event_loop(
    ends: tuple[WorkerLink, Connection],
) -> None:
    link, theirs = ends
    assert link.inline_limit > 0  # a socket: sends may go from the loop
    sends = [asyncio.create_task(link.send(message(t), t)) for t in range(400)]
    gaps: list[float] = []
    last = time.monotonic()
    for _ in range(20):  # the loop keeps turning while the thread is stuck on a full socket
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    assert max(gaps) < 0.5
    written_inline = sum(s.done() for s in sends)
    assert 0 < written_inline < len(sends)  # the rest wait in the thread
    assert link.written - link.read > link.inline_limit

    received: list[tuple[str, int, bytes]] = []

    def read_all() -> None:
        for _ in sends:
            received.append(theirs.recv())

    reader = threading.Thread(target=read_all)
    reader.start()
    await asyncio.gather(*sends)
    await asyncio.to_thread(reader.join, 10)
    assert received == [message(t) for t in range(400)]  # in order, none cut or interleaved


async def test_answered_messages_make_room_for_the_next_ones_on_the_loop(
    ends: tuple[WorkerLink, Connection],
) -> None:
    link, theirs = ends
    per_message = len(message(0)[2]) + MESSAGE_OVERHEAD_BYTES
    fit = link.inline_limit // (per_message + 100)  # surely under the limit, pickling included
    for task in range(fit):
        await link.send(message(task), task)
    assert link.last_in_thread is None  # all written from the loop
    for task in range(fit):
        assert theirs.recv() == message(task)
        link.answered(task, [])
    # Read and answered: as much again goes from the loop.
    for task in range(fit, 2 * fit):
        await link.send(message(task), task)
    assert link.last_in_thread is None
    for task in range(fit, 2 * fit):
        assert theirs.recv() == message(task)


async def test_a_closed_worker_end_is_a_worker_that_died(
    ends: tuple[WorkerLink, Connection],
) -> None:
    link, theirs = ends
    theirs.close()
    with pytest.raises(WorkerDiedError):
        await link.send(message(1), 1)
    link.tell(("forget", ["gone"]))  # no answer wanted: no error either


def test_a_link_over_a_plain_pipe_sends_every_message_through_its_thread() -> None:
    reading, writing = multiprocessing.Pipe(duplex=False)  # an os.pipe: no socket options
    before = len(os.listdir("/proc/self/fd"))
    link = WorkerLink.to(multiprocessing.get_context("spawn").Process(), writing)
    assert link.inline_limit == 0
    assert len(os.listdir("/proc/self/fd")) == before  # the probe's duplicate was closed
    link.close()
    reading.close()
