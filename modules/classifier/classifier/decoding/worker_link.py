"""One decoder process as the module's process sees it: the process, its pipe, the messages
sent on it and the answers awaited.

A message is written straight from the event loop when the worker's socket surely has room
for it, else from the link's own thread, so the loop never blocks on a full socket (a worker
busy with a large chunk reads its next message only when it is done). "Surely" is counted,
not guessed: the worker reads its messages in order and answers each decode message before
reading the next, so once it has answered a message it has read every byte written before
that message's end. Handing every send to a thread cost the module's process 3-4 us of CPU
per frame of the near-null model (a thread woken, the GIL passed, the event loop woken back;
docs/benchmarks.md section 10c); batches of a few large frames pay the same per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any

from classifier.decoding.prepared import FrameResult

# What a message is counted as in the socket's send buffer beyond its bytes: the kernel's own
# bookkeeping per message (about 0.6-0.9 KiB on Linux), rounded up.
MESSAGE_OVERHEAD_BYTES = 1024
# Bytes not yet surely read that may wait in the socket before the next message goes through
# the thread: a quarter of its send buffer, so that the kernel's own rounding never fills it.
INLINE_SHARE_OF_BUFFER = 4
MAX_INLINE_BYTES = 64 * 1024


class WorkerDiedError(Exception):
    pass


@dataclass(eq=False)
class WorkerLink:
    process: BaseProcess
    connection: Connection
    sender: ThreadPoolExecutor
    # Answers awaited, by task number.
    pending: dict[int, asyncio.Future[list[FrameResult]]] = field(default_factory=dict)
    frames: int = 0  # frames sent and not answered: the least loaded worker gets the next chunk
    alive: bool = True
    inline_limit: int = 0  # 0: every message through the thread
    # Bytes counted as written (``MESSAGE_OVERHEAD_BYTES`` each message included), as surely
    # read, and as written once each awaited task's message was.
    written: int = 0
    read: int = 0
    ends: dict[int, int] = field(default_factory=dict)
    # The thread's last send: nothing is written from the loop before it is done, or two
    # writers could interleave their bytes (the thread writes in the order it was given).
    last_in_thread: Future[None] | None = None

    @classmethod
    def to(cls, process: BaseProcess, connection: Connection) -> WorkerLink:
        sender = ThreadPoolExecutor(1, "decoder-send")
        return cls(process, connection, sender, inline_limit=_inline_limit(connection))

    async def send(self, message: Any, task: int | None = None) -> None:
        """Sends a message, and counts ``task``'s answer as the worker having read it. Raises
        ``WorkerDiedError`` when the pipe is closed (the worker is gone)."""
        try:
            in_thread = self._write(message, task, self.connection.send_bytes)
            if in_thread is not None:
                await asyncio.wrap_future(in_thread)
        except (OSError, ValueError) as e:
            raise WorkerDiedError(str(e)) from e

    def tell(self, message: Any) -> None:
        """Sends a message that needs no answer; a worker already gone needs it no more."""
        with contextlib.suppress(OSError, ValueError):
            self._write(message, None, partial(_send_quietly, self.connection))

    def _write(
        self, message: Any, task: int | None, write: Callable[[memoryview], None]
    ) -> Future[None] | None:
        data = ForkingPickler.dumps(message)
        self.written += len(data) + MESSAGE_OVERHEAD_BYTES
        if task is not None:
            self.ends[task] = self.written
        thread_idle = self.last_in_thread is None or self.last_in_thread.done()
        if thread_idle and self.written - self.read <= self.inline_limit:
            write(data)
            return None
        self.last_in_thread = self.sender.submit(write, data)
        return self.last_in_thread

    def answered(self, task: int, results: list[FrameResult]) -> None:
        end = self.ends.pop(task, None)
        if end is not None:
            self.read = max(self.read, end)
        future = self.pending.get(task)
        if future is not None and not future.done():
            future.set_result(results)

    def close(self) -> None:
        self.sender.shutdown(wait=False)
        with contextlib.suppress(OSError):
            self.connection.close()


def _send_quietly(connection: Connection, data: memoryview) -> None:
    with contextlib.suppress(OSError, ValueError):
        connection.send_bytes(data)


def _inline_limit(connection: Connection) -> int:
    """Bytes that may wait unread in the worker's socket with room to spare (0 where the
    connection is no socket: every message then goes through the thread)."""
    duplicate = os.dup(connection.fileno())
    try:
        sock = socket.socket(fileno=duplicate)  # takes the duplicate, closed with it
    except OSError:
        os.close(duplicate)
        return 0
    with sock:
        try:
            buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        except OSError:
            return 0
    return min(MAX_INLINE_BYTES, buffer // INLINE_SHARE_OF_BUFFER)
