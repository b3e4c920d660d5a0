"""Frames through Mosquitto with 1 and 2 classifier replicas beside the same frames through the
simulator's edgeHub, in one run (docs/mqtt.md).

    python -m benchmarks.mqtt_throughput [--rates 50,100,200] [--step-seconds 10]

Each configuration is offered the same steps of the same 320x240 synthetic JPEGs (default
model, default settings, ``HUB=mqtt`` for the broker runs). Latency is the camera's capture
time to the outcome's arrival at the observer, on this machine's clock: both hops, the
broker or edgeHub, and the classifier. A step passes when every frame was answered and
p99 < 100 ms. The broker runs use the frame source's own adapter (``MqttHub``) as camera.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe_machine
from benchmarks.simulator_throughput import P99_LIMIT_MS, Step, measure
from cloud_tools.broker_service import BrokerAddress, BrokerService
from edge_module.hub import OutboundMessage
from edge_module.mqtt_hub import MqttHub
from edge_module.mqtt_settings import MqttSettings
from edge_module.mqtt_topics import output_filter
from framesource.sources.synthetic import make_frame
from simulator.cli.demo_summary import observe_body
from simulator.mosquitto import PREFIX, USERS, Mosquitto
from simulator.mqtt_demo import start, stop, wait_replicas

MAX_IN_FLIGHT = 256


async def measure_broker(
    rates: list[float], step_s: float, replicas: int, work: Path
) -> list[Step]:
    broker = Mosquitto.start(work / "broker")
    steps = [Step(rate, int(rate * step_s)) for rate in rates]
    processes = [
        start(
            "classifier",
            broker,
            f"classifier-{n}",
            work,
            MODEL_CACHE_DIR=str(work / f"models-{n}"),
            PASSTHROUGH_PROPERTIES="truth,step",
        )
        for n in range(1, replicas + 1)
    ]
    address = BrokerAddress(
        broker.host, broker.port, str(broker.ca_path), "operator", USERS["operator"], PREFIX
    )
    operator = await asyncio.to_thread(BrokerService, address)
    lock = threading.Lock()
    counts = {"seen": 0, "last": time.monotonic()}

    def on_outcome(message: Any) -> None:
        obs = observe_body(message.payload, dt.datetime.now(dt.UTC))
        frame = json.loads(message.payload).get("frame") or {}
        index = int((frame.get("properties") or {}).get("step", -1))
        if obs is None or not 0 <= index < len(steps):
            return
        with lock:
            counts["seen"] += 1
            counts["last"] = time.monotonic()
            step = steps[index]
            if obs.error:
                step.refused += 1
            else:
                step.predicted += 1
                if obs.latency_ms is not None:
                    step.latencies.append(obs.latency_ms)

    try:
        for output in ("predictions", "errors"):
            await asyncio.to_thread(operator.subscribe, output_filter(PREFIX, output), on_outcome)
        await wait_replicas(operator, replicas, processes)
        camera_settings = MqttSettings.from_env(broker.module_env("framesource", "camera-1"))
        camera = MqttHub(camera_settings, asyncio.get_running_loop())
        await camera.connect()
        try:
            await offer(camera, rates, step_s)
        finally:
            await camera.close()
        expected = sum(s.offered for s in steps)
        # Done when every frame is accounted for, or nothing arrived for 15 s.
        while counts["seen"] < expected:
            if time.monotonic() - counts["last"] > 15:
                break
            await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(operator.close)
        for process in processes:
            stop(process)
        broker.stop()
    return steps


async def offer(camera: MqttHub, rates: list[float], step_s: float) -> None:
    """Paced on the monotonic clock, sends in flight concurrently, as ``sdk_sender`` does."""
    frames = [make_frame("bench", 2718, i, 320, 240, 85) for i in range(100)]
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    pending: set[asyncio.Task[None]] = set()
    sequence = 0

    async def send(message: OutboundMessage) -> None:
        try:
            await camera.send("frames", message)
        finally:
            slots.release()

    for index, rate in enumerate(rates):
        started, count = time.monotonic(), int(rate * step_s)
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = frames[sequence % len(frames)]
            properties = {
                "truth": frame.truth or "",
                "step": str(index),
                "capture_time": str(int(time.time() * 1000)),
            }
            message = OutboundMessage(
                frame.jpeg, "image/jpeg", "binary", f"s{index}-{sequence}", None, properties
            )
            sequence += 1
            await slots.acquire()
            task = asyncio.create_task(send(message))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(1.0)  # a gap between steps so their latencies do not mix
    with contextlib.suppress(Exception):
        await asyncio.gather(*pending)


def table(name: str, steps: list[Step]) -> list[str]:
    rows = []
    for s in steps:
        verdict = "ok" if s.passed else "FAIL"
        rows.append(
            f"{name:<22} {s.rate:>7g} {s.offered:>7} {s.predicted:>9} {s.refused:>6} {s.lost:>5} "
            f"{s.p(0.5):>7.1f} {s.p(0.99):>7.1f}  {verdict}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="50,100,200")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--address", default="127.0.9.2", help="the simulator's address")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(describe_machine())
    results: list[tuple[str, list[Step]]] = []
    with tempfile.TemporaryDirectory() as state:
        work = Path(state)
        results.append(
            (
                "edgeHub (simulator)",
                asyncio.run(measure(rates, args.step_seconds, args.address, work / "sim")),
            )
        )
        for replicas in (1, 2):
            (work / f"mqtt-{replicas}").mkdir()
            steps = asyncio.run(
                measure_broker(rates, args.step_seconds, replicas, work / f"mqtt-{replicas}")
            )
            results.append((f"Mosquitto, {replicas} replica{'s' if replicas > 1 else ''}", steps))
    print(
        f"\ndefault model, 320x240 JPEG, {args.step_seconds:g} s per step, p99 limit {P99_LIMIT_MS:g} ms"
    )
    print(
        f"{'path':<22} {'fps':>7} {'frames':>7} {'predicted':>9} {'errors':>6} {'lost':>5} {'p50 ms':>7} {'p99 ms':>7}  verdict"
    )
    for name, steps in results:
        print("\n".join(table(name, steps)))


if __name__ == "__main__":
    main()
