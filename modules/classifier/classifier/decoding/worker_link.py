"""One decoder process as the module's process sees it: the process, its pipe, the messages
sent on it and the answers awaited.

Messages are sent from the link's own thread, so the event loop never blocks on a full pipe
(a worker busy with a large chunk reads its next message only when it is done).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from classifier.decoding.prepared import FrameResult


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

    @classmethod
    def to(cls, process: BaseProcess, connection: Connection) -> WorkerLink:
        return cls(process, connection, ThreadPoolExecutor(1, "decoder-send"))

    async def send(self, message: Any) -> None:
        """Raises ``WorkerDiedError`` when the pipe is closed (the worker is gone)."""
        try:
            await asyncio.get_running_loop().run_in_executor(
                self.sender, self.connection.send, message
            )
        except (OSError, ValueError) as e:
            raise WorkerDiedError(str(e)) from e

    def tell(self, message: Any) -> None:
        """Sends a message that needs no answer; a worker already gone needs it no more."""
        asyncio.get_running_loop().run_in_executor(
            self.sender, _send_quietly, self.connection, message
        )

    def answered(self, task: int, results: list[FrameResult]) -> None:
        future = self.pending.get(task)
        if future is not None and not future.done():
            future.set_result(results)

    def close(self) -> None:
        self.sender.shutdown(wait=False)
        with contextlib.suppress(OSError):
            self.connection.close()


def _send_quietly(connection: Connection, message: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        connection.send(message)
