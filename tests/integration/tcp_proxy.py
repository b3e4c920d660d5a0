"""A loopback TCP proxy the test controls, to put network faults between a module and edgeHub.

- ``cut()``: every connection through it is reset and new ones are reset as they arrive,
  as when the link between module and edgeHub goes down; ``heal()`` ends that.
- ``freeze()``: connections stay open but no byte moves either way, as on a link that
  silently drops everything: the SDK still believes it is connected. ``thaw()`` resumes.

Listens on loopback only; it forwards to one address. It relays bytes, so TLS passes
through it untouched (the module checks the server certificate for the proxy's address, so
the simulator's certificate must name it: ``SimulatorSettings.extra_cert_names``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress


class TcpProxy:
    def __init__(self, listen_host: str, listen_port: int, target: tuple[str, int]) -> None:
        if not ipaddress.ip_address(listen_host).is_loopback:
            raise ValueError(f"{listen_host} is not a loopback address")
        self.listen = (listen_host, listen_port)
        self.target = target
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self.listen)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._reset_all()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    def cut(self) -> None:
        self._cut = True
        self._reset_all()

    def heal(self) -> None:
        self._cut = False

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._links.discard(task)
            for side in (writer, up_writer):
                self._writers.discard(side)
                side.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
