"""A load-generating IoT Edge module for the simulator benchmark: ``python -m benchmarks.sdk_sender``.

Runs under the simulator's runtime in place of the camera, with the real SDK. It sends
pre-encoded JPEG frames on its ``frames`` output following ``SCHEDULE`` (``rate:seconds,...``),
each frame tagged with its step, its ground truth and its capture time, so the benchmark can
judge every step from what reaches ``$upstream``. Sends are paced on the monotonic clock and
kept in flight concurrently (each waits for its PUBACK), so a slow acknowledgement does not
lower the offered rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubModuleClient

from framesource.sources.synthetic import make_frame

log = logging.getLogger("sdk_sender")
MAX_IN_FLIGHT = 256


def parse_schedule(text: str) -> list[tuple[float, float]]:
    steps = []
    for part in text.split(","):
        rate, _, seconds = part.partition(":")
        steps.append((float(rate), float(seconds)))
    return steps


async def run() -> None:
    schedule = parse_schedule(os.environ["SCHEDULE"])
    width, height = int(os.environ.get("WIDTH", "320")), int(os.environ.get("HEIGHT", "240"))
    frames = [make_frame("bench", 2718, i, width, height, 85) for i in range(100)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    client = IoTHubModuleClient.create_from_edge_environment()
    await client.connect()
    await asyncio.sleep(float(os.environ.get("WARMUP_S", "3")))  # let the classifier subscribe
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    pending: set[asyncio.Task[None]] = set()
    sequence = 0

    async def send(message: Message) -> None:
        try:
            await client.send_message_to_output(message, "frames")
        finally:
            slots.release()

    for step, (rate, seconds) in enumerate(schedule):
        started, count = time.monotonic(), int(rate * seconds)
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set():
                break
            frame = frames[sequence % len(frames)]
            message = Message(
                frame.jpeg, message_id=f"s{step}-{sequence}", content_type="image/jpeg"
            )
            message.custom_properties = {
                "truth": frame.truth,
                "step": str(step),
                "capture_time": str(int(time.time() * 1000)),
            }
            sequence += 1
            await slots.acquire()
            task = asyncio.create_task(send(message))
            pending.add(task)
            task.add_done_callback(pending.discard)
        log.info("step %d: offered %d frames at %.0f/s", step, count, rate)
        await asyncio.sleep(1.0)  # a gap between steps so their latencies do not mix
    await asyncio.gather(*pending, return_exceptions=True)
    print("SCHEDULE DONE", flush=True)
    await stop.wait()
    await client.shutdown()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
