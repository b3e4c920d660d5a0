"""A loopback TCP proxy that can cut connections after a number of bytes, for fault tests.

It forwards bytes and never looks inside them, so TLS runs end to end through it and the
client sees exactly what a dropped connection mid-transfer looks like.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class CutPolicy:
    after_bytes: int | None = None  # server-to-client bytes before a cut; None: never cut
    connections: int = 1 << 30  # how many connections (the first ones) are cut


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, policy: CutPolicy | None = None) -> None:
        self.target = (target_host, target_port)
        self.policy = policy or CutPolicy()
        self.connections = 0
        self.bytes_to_client = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str = "127.0.0.1") -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, host, 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.policy.after_bytes if self.connections <= self.policy.connections else None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        upstream = asyncio.create_task(self._pipe(reader, up_writer, None, False))
        downstream = asyncio.create_task(self._pipe(up_reader, writer, cut, True))
        self._tasks |= {upstream, downstream}
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        self._tasks -= {upstream, downstream}
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cut: int | None,
        down: bool,
    ) -> None:
        sent = 0
        while data := await reader.read(65536):
            if cut is not None and sent + len(data) > cut:
                data = data[: cut - sent]
            writer.write(data)
            await writer.drain()
            sent += len(data)
            if down:
                self.bytes_to_client += len(data)
            if cut is not None and sent >= cut:
                transport = writer.transport
                transport.abort()  # a reset, as a dropped link looks to the client
                return
