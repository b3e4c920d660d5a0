"""A synthetic camera IoT Edge module: ``python -m synthcam``.

Sends ``FPS`` JPEG frames a second to its ``frames`` output (edgeHub routes them on), paced
on the monotonic clock so a slow send does not make the rate drift. Settings, all optional:
FPS (10), WIDTH x HEIGHT (320 x 240), JPEG_QUALITY (85), SEED, FRAME_COUNT (0 = forever),
SOURCE_ID (the module id), OUTPUT (frames). SIGTERM stops it after the frame in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubModuleClient

from synthcam.frames import DEFAULT_SEED, make_frame

log = logging.getLogger("synthcam")
# The edgeHub output frames go to, and the variable that renames it (endpoints.json).
OUTPUT_ENV = "OUTPUT"
DEFAULT_OUTPUT = "frames"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


async def run() -> None:
    fps = float(os.environ.get("FPS") or 10)
    width, height = _int("WIDTH", 320), _int("HEIGHT", 240)
    quality, seed, count = (
        _int("JPEG_QUALITY", 85),
        _int("SEED", DEFAULT_SEED),
        _int("FRAME_COUNT", 0),
    )
    source = os.environ.get("SOURCE_ID") or os.environ.get("IOTEDGE_MODULEID") or "synthcam"
    output = os.environ.get(OUTPUT_ENV) or DEFAULT_OUTPUT
    if fps <= 0 or width < 8 or height < 8:
        raise ValueError("FPS must be > 0 and WIDTH/HEIGHT at least 8")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = IoTHubModuleClient.create_from_edge_environment()
    await client.connect()
    log.info("sending %sx%s JPEG frames at %.1f fps to %r", width, height, fps, output)
    period_s, started, index = 1.0 / fps, time.monotonic(), 0
    try:
        while not stop.is_set() and (count == 0 or index < count):
            frame = await loop.run_in_executor(
                None, make_frame, source, seed, index, width, height, quality
            )
            message = Message(frame.jpeg, message_id=frame.message_id, content_type="image/jpeg")
            message.custom_properties = frame.properties
            await client.send_message_to_output(message, output)
            index += 1
            delay = started + index * period_s - time.monotonic()
            if delay > 0:
                # Waking early on stop keeps SIGTERM prompt even at low frame rates.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        log.info("sent %d frames", index)
        if count and index >= count:
            await stop.wait()  # a finite run stays connected until told to stop
    finally:
        await client.shutdown()


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    try:
        asyncio.run(run())
    except ValueError as e:
        log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
