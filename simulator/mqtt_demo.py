"""``scripts/demo.sh --mqtt``: the demo on Eclipse Mosquitto instead of edgeHub (docs/mqtt.md).

A local Mosquitto (TLS, passwords, ACLs), the synthetic camera module and N classifier
replicas sharing its frames, all with ``HUB=mqtt``; predictions read from the broker with
the same summary as the edgeHub demo, plus frames per replica.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from cloud_tools.broker_service import BrokerAddress, BrokerService
from edge_module.mqtt_topics import output_filter
from simulator.cli.demo_summary import Summary, frame_line, observe_body
from simulator.mosquitto import PREFIX, USERS, Mosquitto, missing

REPO = Path(__file__).resolve().parents[1]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="demo.sh --mqtt", description="the demo on a local Mosquitto broker"
    )
    parser.add_argument("--duration", type=float, default=40.0, help="seconds; 0: until Ctrl-C")
    parser.add_argument("--fps", type=float, default=20.0, help="the camera's frame rate")
    parser.add_argument("--replicas", type=int, default=2, help="classifier replicas")
    parser.add_argument("--quiet", action="store_true", help="summary lines only")
    return parser.parse_args(argv)


def start(module: str, broker: Mosquitto, client_id: str, work: Path, **env: str) -> Any:
    settings = {k: v for k, v in os.environ.items() if not k.startswith(("IOTEDGE_", "MQTT_"))}
    settings |= broker.module_env(module, client_id) | {"PYTHONUNBUFFERED": "1"} | env
    log = (work / f"{client_id}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", module], cwd=REPO, env=settings, stdout=log, stderr=log
    )


async def run(args: argparse.Namespace, work: Path) -> int:
    broker = Mosquitto.start(work / "broker")
    processes: list[Any] = []
    summary = Summary()
    replicas: Counter[str] = Counter()
    lock = threading.Lock()
    try:
        classifier_env = {"PASSTHROUGH_PROPERTIES": "truth,seq", "MAX_WAIT_MS": "5"}
        for n in range(1, args.replicas + 1):
            cache = str(work / f"models-{n}")
            processes.append(
                start(
                    "classifier",
                    broker,
                    f"classifier-{n}",
                    work,
                    MODEL_CACHE_DIR=cache,
                    **classifier_env,
                )
            )
        address = BrokerAddress(
            broker.host, broker.port, str(broker.ca_path), "operator", USERS["operator"], PREFIX
        )
        operator = await asyncio.to_thread(BrokerService, address)

        def on_outcome(message: Any) -> None:
            obs = observe_body(message.payload, dt.datetime.now(dt.UTC))
            if obs is None:
                return
            with lock:
                summary.add(obs)
                replicas[message.topic.rsplit("/", 1)[-1]] += 1
            if not args.quiet:
                print(frame_line(obs), flush=True)

        for output in ("predictions", "errors"):
            await asyncio.to_thread(operator.subscribe, output_filter(PREFIX, output), on_outcome)
        await wait_replicas(operator, args.replicas, processes)
        processes.append(
            start(
                "framesource",
                broker,
                "camera-1",
                work,
                SOURCE_URL="synthetic:",
                SOURCE_ID="camera-1",
                FPS=str(args.fps),
                CLAIM_CHECK_DIR=str(work / "claims"),
            )
        )
        print(
            f"demo: synthetic camera at {args.fps:g} fps -> Mosquitto {broker.host}:{broker.port} "
            f"-> {args.replicas} classifier replicas (shared subscription); Ctrl-C stops"
        )
        await show(summary, replicas, lock, args.duration)
        processes[-1].send_signal(signal.SIGTERM)  # the camera first: the rest drains
        await asyncio.to_thread(processes[-1].wait, 30)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(operator.close)
    finally:
        for process in reversed(processes):
            stop(process)
        broker.stop()
    print("final: " + summary.line())
    print("frames per replica: " + ", ".join(f"{r} {n}" for r, n in sorted(replicas.items())))
    if summary.total == 0:
        print(f"no predictions arrived: see the module logs in {work}", file=sys.stderr)
        return 1
    return 0


async def wait_replicas(operator: BrokerService, count: int, processes: list[Any]) -> None:
    """Until every replica reports running (its shared subscription is then in force)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 180
    while True:
        reported = await asyncio.to_thread(operator.reported, "classifier")
        if sum(1 for r in reported.values() if r.get("state") == "running") >= count:
            return
        if loop.time() > deadline or any(p.poll() is not None for p in processes):
            raise SystemExit("a classifier replica did not start: see its log")
        await asyncio.sleep(0.5)


async def show(
    summary: Summary, replicas: Counter[str], lock: threading.Lock, duration: float
) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + duration if duration > 0 else None
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        while end is None or loop.time() < end:
            await asyncio.sleep(2.0)
            with lock:
                shares = ", ".join(f"{r} {n}" for r, n in sorted(replicas.items()))
                print(f"{summary.line()}; per replica: {shares}", flush=True)


def stop(process: Any) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def main(argv: list[str]) -> int:
    args = parse(argv)
    problem = missing()
    if problem is not None:
        print(f"demo --mqtt: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-mqtt-demo-") as work:
        return asyncio.run(run(args, Path(work)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
