"""An MJPEG camera for tests: an HTTP server on loopback (aiohttp) that streams JPEG frames as
``multipart/x-mixed-replace``, as IP cameras and ``/video.mjpg`` endpoints do, at a fixed
rate, from the synthetic generator (so each frame's class is known)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from framesource.sources.synthetic import make_frame

BOUNDARY = "frameboundary"


@asynccontextmanager
async def mjpeg_camera(fps: float = 10.0, frames: int = 0) -> AsyncIterator[str]:
    """Serves ``http://127.0.0.1:PORT/video.mjpg``; yields the URL. ``frames``: end the
    response after that many (a camera that drops), 0: never."""
    jpegs = [make_frame("mjpeg", 5, i, 320, 240, 80).jpeg for i in range(20)]

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        )
        await response.prepare(request)
        sent = 0
        while not frames or sent < frames:
            jpeg = jpegs[sent % len(jpegs)]
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            )
            try:
                await response.write(head.encode() + jpeg + b"\r\n")
            except ConnectionResetError:
                break  # the viewer went away, as viewers do
            sent += 1
            await asyncio.sleep(1.0 / fps)
        return response

    app = web.Application()
    app.router.add_get("/video.mjpg", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/video.mjpg"
    finally:
        await runner.cleanup()
