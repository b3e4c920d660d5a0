"""Start and stop an aiohttp application on loopback TCP or a unix socket.

Shared by the service API and the workload API so both bind, report their port and shut
down the same way.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

from aiohttp import web

_SHUTDOWN_TIMEOUT_S = 2.0


class HttpServer:
    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._runner: web.AppRunner | None = None
        self._unix_paths: list[Path] = []

    async def _ensure_runner(self) -> web.AppRunner:
        if self._runner is None:
            # access_log=None: the simulator logs what matters itself, not every request.
            runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            self._runner = runner
        return self._runner

    async def start_tcp(
        self, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Listen on ``host:port`` (port 0 picks a free one); returns the bound port."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address; the simulator stays local")
        runner = await self._ensure_runner()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        if port:
            return port
        # The newest TCP address on this host is the site just started.
        bound = [a for a in runner.addresses if isinstance(a, tuple) and a[0] == host]
        return int(bound[-1][1])

    async def start_unix(self, path: Path) -> None:
        """Listen on a unix socket only the current user may use."""
        runner = await self._ensure_runner()
        if path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        site = web.UnixSite(runner, str(path))
        await site.start()
        os.chmod(path, 0o600)
        self._unix_paths.append(path)

    async def stop(self) -> None:
        runner = self._runner
        if runner is not None:
            for site in list(runner.sites):
                await site.stop()
            server = runner.server
            handlers = server.connections if server is not None else []
            transports = [h.transport for h in handlers if h.transport is not None]
            await runner.cleanup()
            # cleanup() closes idle TLS keep-alive connections gracefully, which waits for
            # the peer's close_notify; a client that never reads again (requests' pool) would
            # leave the socket open after the loop is gone, so cut what is left.
            for transport in transports:
                transport.abort()
            self._runner = None
        for path in self._unix_paths:
            path.unlink(missing_ok=True)
        self._unix_paths.clear()
