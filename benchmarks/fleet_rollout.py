"""A model rollout to a fleet of simulated IoT Edge devices on this machine.

    python benchmarks/fleet_rollout.py --devices 100 [--canary-percent 5] [--idle-s 30]

The fleet (``simulator.fleet``) runs N devices in this process, each with its own edgeHub
on its own loopback address and the real classifier module process (default model), plus
Azurite. Once every classifier reports running, the benchmark watches an idle window, then
runs the operator's command as a user would (``python -m cloud_tools model rollout``, a
layered deployment of a new version of the default model to every device) and records, per
device, when its twin received the model and when the module reported it active. It prints
the machine, the start-up cost, memory (RSS and PSS) and CPU of the simulator process (hub
plus every edgeHub and agent), of the modules and of Azurite, idle and during the rollout,
convergence times, and ``fleet status`` at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import describe_machine
from benchmarks.process_usage import Usage, mem_available_mib
from cloud_tools.model_stamp import stamp_model
from simulator.cli.demo_update import run_operator
from simulator.fleet import DeviceSpec, Fleet, FleetSettings
from simulator.local import startup
from simulator.local.blob_storage import AzuriteServer
from simulator.local.modules import REPO, TEMPLATE, repo_module_commands
from simulator.local.tool_env import blob_storage, tool_variables, write_connection_info

DEFAULT_MODEL = REPO / "modules" / "classifier" / "models" / "seed-cnn-synth10.onnx"
POLL_S = 0.5


@dataclass
class Timeline:
    """Seconds since the rollout command started, per device."""

    desired: dict[str, float] = field(default_factory=dict)
    active: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def module_pids(fleet: Fleet) -> list[int]:
    pids = []
    for device in fleet.devices.values():
        for report in device.runtime.module_reports().values():
            if report.pid is not None:
                pids.append(report.pid)
    return pids


async def wait_running(fleet: Fleet, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        running = sum(
            fleet.state.twins.reported(d, "classifier").get("state") == "running"
            for d in fleet.devices
        )
        if running == len(fleet.devices):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {running}/{len(fleet.devices)} classifiers running in time")
        await asyncio.sleep(1.0)


async def watch(fleet: Fleet, sha256: str, started: float, timeline: Timeline) -> None:
    while True:
        now = time.monotonic() - started
        for device_id in fleet.devices:
            twins = fleet.state.twins
            desired = twins.desired(device_id, "classifier").get("model") or {}
            if isinstance(desired, dict) and desired.get("sha256") == sha256:
                timeline.desired.setdefault(device_id, now)
            reported = twins.reported(device_id, "classifier")
            model = reported.get("model") or {}
            update = reported.get("modelUpdate") or {}
            if not isinstance(model, dict) or not isinstance(update, dict):
                continue
            if update.get("state") == "active" and model.get("sha256") == sha256:
                timeline.active.setdefault(device_id, now)
            elif update.get("state") in ("failed", "rolled_back"):
                timeline.failed.setdefault(device_id, str(update.get("error")))
        await asyncio.sleep(POLL_S)


SIMULATOR = "simulator process (hub + edgeHubs + agents)"
MODULES = "classifier modules"
AZURITE = "Azurite"


def snapshot(me: int, fleet: Fleet, azurite: list[int]) -> dict[str, Usage]:
    return {
        SIMULATOR: Usage.of([me]),
        MODULES: Usage.of(module_pids(fleet)),
        AZURITE: Usage.of(azurite),
    }


def print_usage(after: dict[str, Usage], before: dict[str, Usage], window_s: float) -> None:
    for name, usage in after.items():
        print("  " + usage_line(name, delta(usage, before[name]), window_s))


def usage_line(name: str, usage: Usage, window_s: float | None = None) -> str:
    cpu = (
        f", CPU {usage.cpu_s:.1f} s"
        if window_s is None
        else (f", CPU {usage.cpu_s:.1f} s = {100 * usage.cpu_s / window_s:.0f}% of one core")
    )
    return f"{name}: RSS {usage.rss_mib:,.0f} MiB, PSS {usage.pss_mib:,.0f} MiB{cpu}"


def delta(after: Usage, before: Usage) -> Usage:
    return Usage(after.rss_mib, after.pss_mib, after.cpu_s - before.cpu_s)


async def benchmark(args: argparse.Namespace, state_dir: Path) -> None:
    print(describe_machine())
    print(
        "note: other engineers' test runs share this 2-core machine; CPU and time figures "
        "are noisy (repeat and take medians)\n"
    )
    available_before = mem_available_mib()
    devices = tuple(
        DeviceSpec(f"dev-{i:03d}", {"site": "bench"}) for i in range(1, args.devices + 1)
    )
    settings = FleetSettings(
        state_dir=state_dir,
        address=args.address,
        devices=devices,
        startup=startup.from_templates(TEMPLATE, []),
        report_interval_s=1.0,
    )
    me = os.getpid()
    t0 = time.monotonic()
    fleet = await Fleet.start(settings, repo_module_commands)
    try:
        async with blob_storage(fleet, 0) as storage:
            if storage is None:
                raise SystemExit("Azurite is not installed: run scripts/bootstrap.sh")
            await measure(args, fleet, storage, me, t0, available_before)
    finally:
        await fleet.stop()


async def measure(
    args: argparse.Namespace,
    fleet: Fleet,
    storage: AzuriteServer,
    me: int,
    t0: float,
    available_before: float,
) -> None:
    write_connection_info(fleet, storage.endpoint)
    env = {**os.environ, **tool_variables(fleet.settings.state_dir)}
    up_s = time.monotonic() - t0
    await wait_running(fleet, args.start_timeout_s)
    n = len(fleet.devices)
    running_s = time.monotonic() - t0
    print(
        f"{n} devices started in {up_s:.1f} s (every runtime started its modules); every "
        f"classifier reported running {running_s:.1f} s after the start"
    )
    azurite = [storage.pid] if storage.pid else []
    idle_start = snapshot(me, fleet, azurite)
    await asyncio.sleep(args.idle_s)
    idle = snapshot(me, fleet, azurite)
    print(f"\nidle, {args.idle_s:g} s window:")
    print_usage(idle, idle_start, args.idle_s)
    modules = idle[MODULES]
    print(
        f"  per device: classifier RSS {modules.rss_mib / n:.0f} MiB, PSS {modules.pss_mib / n:.0f} MiB; "
        f"machine MemAvailable fell by {available_before - mem_available_mib():,.0f} MiB"
    )

    model = Path(fleet.settings.state_dir) / "seed-cnn-1.1.0.onnx"
    _, sha256 = await asyncio.to_thread(
        stamp_model,
        DEFAULT_MODEL,
        model,
        name=None,
        version="1.1.0",
        self_test_image=None,
        expect=None,
        min_confidence=0.5,
    )
    rollout_args = [
        "model", "rollout", "--name", "bench-1-1-0", "--target-condition", "tags.site='bench'",
        "--priority", "10", "--model", str(model), "--poll-s", "1", "--timeout", str(args.timeout_s),
    ]  # fmt: skip
    if args.canary_percent:
        rollout_args += ["--canary-percent", str(args.canary_percent)]
    timeline = Timeline()
    before = snapshot(me, fleet, azurite)
    started = time.monotonic()
    watcher = asyncio.create_task(watch(fleet, sha256, started, timeline))
    print("\nrollout:")
    code = await run_operator(env, *rollout_args)
    took = time.monotonic() - started
    await asyncio.sleep(POLL_S * 2)
    watcher.cancel()
    after = snapshot(me, fleet, azurite)
    print(f"rollout exit {code}, {took:.1f} s:")
    print_usage(after, before, took)
    report(timeline, n)
    print("\nfleet status:")
    await run_operator(env, "fleet", "status")
    print(
        json.dumps(
            {
                "devices": n,
                "rollout_s": took,
                "exit": code,
                "active": len(timeline.active),
                "failed": len(timeline.failed),
            }
        )
    )


def report(timeline: Timeline, n: int) -> None:
    active = sorted(timeline.active.values())
    print(f"\n{len(active)}/{n} devices active, {len(timeline.failed)} failed")
    if not active:
        return
    per_device = [timeline.active[d] - timeline.desired.get(d, 0.0) for d in timeline.active]
    print(
        f"  time to full convergence (command start to the last device active): {active[-1]:.1f} s"
        f" = {active[-1] / n:.2f} s per device"
    )
    print(
        "  per device, desired model in the twin -> reported active: "
        f"median {statistics.median(per_device):.1f} s, max {max(per_device):.1f} s"
    )
    for device, error in sorted(timeline.failed.items())[:5]:
        print(f"  failed {device}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--canary-percent", type=float, default=0.0)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--start-timeout-s", type=float, default=1800.0)
    parser.add_argument("--address", default="127.77.0.1")
    args = parser.parse_args()
    # Short: every device's workload socket lives under it.
    with tempfile.TemporaryDirectory(prefix="fleet-", dir="/tmp") as state:
        asyncio.run(benchmark(args, Path(state)))


if __name__ == "__main__":
    main()
