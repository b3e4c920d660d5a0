"""Highest sustained frame rate through the simulator with the real SDK, p99 < 100 ms, no drops.

    python benchmarks/simulator_throughput.py [--rates 25,50,100,150,200] [--step-seconds 10]

The simulator runs the repository's deployment with the classifier module (default model,
default settings) and, in the camera's place, ``benchmarks.sdk_sender``: a real-SDK module that
offers each rate for ``--step-seconds``. Latency is frame capture (sender clock) to arrival in
the hub's upstream store, so it includes both SDK hops, edgeHub routing and the classifier. A
step passes when every frame was predicted (none dropped, refused or lost) and p99 < 100 ms.
The SDK-free in-process pipeline rate of the same model is measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import describe_machine
from benchmarks.models import ensure_model
from benchmarks.pipeline_throughput import camera_jpegs, pipeline_fps
from classifier.engine import InferenceEngine
from simulator.cli.demo_summary import observe
from simulator.device.device import DeviceSettings
from simulator.device.runtime import ModuleCommand
from simulator.fleet import Fleet, FleetSettings
from simulator.hub.upstream import MessageFilter, UpstreamStore
from simulator.local.modules import REPO, local_device_manifest, repo_module_commands
from simulator.local.startup import base_only, set_module_env

P99_LIMIT_MS = 100.0


@dataclass
class Step:
    rate: float
    offered: int
    predicted: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def lost(self) -> int:
        return self.offered - self.predicted - self.refused

    @property
    def passed(self) -> bool:
        return self.refused == 0 and self.lost == 0 and self.p(0.99) < P99_LIMIT_MS


async def measure(rates: list[float], step_s: float, address: str, state: Path) -> list[Step]:
    schedule = ",".join(f"{r:g}:{step_s:g}" for r in rates)
    deployments = base_only(local_device_manifest())
    deployments = set_module_env(deployments, "framesource", "SCHEDULE", schedule)
    deployments = set_module_env(deployments, "classifier", "PASSTHROUGH_PROPERTIES", "truth,step")

    def commands(device: DeviceSettings) -> dict[str, ModuleCommand]:
        made = repo_module_commands(device)
        made["framesource"] = ModuleCommand(
            argv=[sys.executable, "-m", "benchmarks.sdk_sender"],
            cwd=REPO,
            env={"PYTHONUNBUFFERED": "1"},
        )
        return made

    steps = [Step(rate, int(rate * step_s)) for rate in rates]
    settings = FleetSettings(state_dir=state, address=address, startup=deployments)
    fleet = await Fleet.start(settings, commands)
    try:
        await collect(fleet.state.upstream, steps, deadline_s=len(rates) * (step_s + 1) + 60)
    finally:
        await fleet.stop()
    return steps


async def collect(store: UpstreamStore, steps: list[Step], deadline_s: float) -> None:
    expected = sum(s.offered for s in steps)
    seen = 0
    deadline = time.monotonic() + deadline_s
    idle_since = time.monotonic()

    async def follow() -> None:
        nonlocal seen, idle_since
        async for stored in store.follow(
            after_sequence=0, where=MessageFilter(module_id="classifier"), poll_interval_s=0.2
        ):
            obs = observe(stored)
            doc = json.loads(stored.message.body)
            step_index = int((doc["frame"].get("properties") or {}).get("step", -1))
            if obs is None or not 0 <= step_index < len(steps):
                continue
            step = steps[step_index]
            seen += 1
            idle_since = time.monotonic()
            if obs.error:
                step.refused += 1
            else:
                step.predicted += 1
                if obs.latency_ms is not None:
                    step.latencies.append(obs.latency_ms)

    task = asyncio.create_task(follow())
    try:
        # Done when every frame is accounted for, or nothing arrived for 15 s after the last.
        while seen < expected and time.monotonic() < deadline:
            if seen and time.monotonic() - idle_since > 15:
                break
            await asyncio.sleep(0.5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="25,50,100,150,200,250")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--address", default="127.0.9.1")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(describe_machine())
    with tempfile.TemporaryDirectory() as state:
        steps = asyncio.run(measure(rates, args.step_seconds, args.address, Path(state)))
    print(
        f"\nthrough the simulator (real SDK both ways), default model, {args.step_seconds:g} s per step:"
    )
    print(
        f"{'offered fps':>11} {'frames':>7} {'predicted':>9} {'refused':>7} {'lost':>5} {'p50 ms':>7} {'p99 ms':>7}  verdict"
    )
    for s in steps:
        verdict = "ok" if s.passed else "FAIL"
        print(
            f"{s.rate:>11g} {s.offered:>7} {s.predicted:>9} {s.refused:>7} {s.lost:>5} {s.p(0.5):>7.1f} {s.p(0.99):>7.1f}  {verdict}"
        )
    passing = [s.rate for s in steps if s.passed]
    best = max(passing) if passing else 0.0
    print(
        f"\nhighest sustained rate with p99 < {P99_LIMIT_MS:g} ms and nothing dropped: {best:g} frames/s"
    )
    engine = InferenceEngine.from_path(ensure_model("default"))
    engine.warm_up()
    fps, _ = asyncio.run(pipeline_fps(engine, 8, camera_jpegs(64, 320, 240), 2000))
    print(
        f"SDK-free in-process pipeline, same model and batch 8, 320x240 JPEG: {fps:,.0f} frames/s"
    )


if __name__ == "__main__":
    main()
