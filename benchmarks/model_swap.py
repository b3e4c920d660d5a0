"""Hot-swap cost on the default model: time from desired change to active, what the frames in
flight see meanwhile, and memory over many swaps.

    python benchmarks/model_swap.py [--swaps 50] [--fps 100]

In process (the module's own updater, downloader, cache and pipeline on an in-process hub; no
SDK), so the figures are the module's, not the transport's. The default model is pushed
alternately with a re-stamped copy (same weights, another sha256) from file:// URLs: the first
two swaps download and verify, later ones load from the cache. A camera sends 320x240 JPEG
frames at ``--fps`` throughout; each frame's latency (arrival to prediction) is recorded, and
the frames that arrived while a swap was under way are counted and checked (none lost, none
failed). RSS is sampled after every swap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.machine import describe_machine
from classifier.app import ClassifierModule
from classifier.config import DEFAULT_MODEL, ModuleConfig
from classifier.engine import file_sha256
from classifier.model_update import start_model
from classifier.model_update.desired import MODEL_KEYS
from cloud_tools.model_stamp import stamp_model
from edge_module.hub import InboundMessage
from edge_module.local_hub import LocalHub
from framesource.sources.synthetic import make_frame


class _WatchedHub(LocalHub):
    """Wakes the benchmark on every reported-properties patch, to time swaps closely."""

    def __init__(self) -> None:
        super().__init__()
        self.reported_changed = asyncio.Event()

    async def report(self, patch: dict[str, Any]) -> None:
        await super().report(patch)
        self.reported_changed.set()

    async def wait_update(self, version: int) -> str:
        while True:
            update = self.reported.get("modelUpdate", {})
            if update.get("desiredVersion") == version and update["state"] in ("active", "failed"):
                return str(update["state"])
            self.reported_changed.clear()
            await self.reported_changed.wait()


@dataclass
class SwapRun:
    swap_ms: list[float]
    frames: int
    predictions: int
    errors: int
    frames_with_one_outcome: int
    in_swap: int
    latency_during: list[float]
    latency_outside: list[float]
    rss_mib: list[float]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _section(path: Path) -> dict[str, object]:
    found = {"url": path.as_uri(), "sha256": file_sha256(path)}
    return {key: found.get(key) for key in MODEL_KEYS}


async def run(swaps: int, fps: float, work: Path) -> SwapRun:
    other = work / "default-restamped.onnx"
    stamp_model(DEFAULT_MODEL, other, version="1.0.0-restamped")
    sections = [_section(other), _section(DEFAULT_MODEL)]
    env = {"MODEL_CACHE_DIR": str(work / "cache"), "MODEL_MIN_FREE_BYTES": "0"}
    config = ModuleConfig.from_env(env | {"MODEL_PROBATION_FRAMES": "20"})
    hub = _WatchedHub()
    startup = await asyncio.to_thread(
        start_model, config.model_path, config.cache_dir, config.engine
    )
    module = ClassifierModule.build(hub, config, startup)
    stop = asyncio.Event()
    task = asyncio.create_task(module.run(stop))
    await hub.ready.wait()
    frames = [make_frame("bench", 7, i, 320, 240, 85).jpeg for i in range(64)]
    arrived: dict[str, float] = {}
    in_swap: set[str] = set()
    swapping = False

    async def camera() -> None:
        n = 0
        while True:
            frame_id = f"b{n:07d}"
            arrived[frame_id] = time.perf_counter()
            if swapping:
                in_swap.add(frame_id)
            await hub.deliver(
                InboundMessage("frames", frames[n % 64], "image/jpeg", message_id=frame_id)
            )
            n += 1
            await asyncio.sleep(1 / fps)

    cam = asyncio.create_task(camera())
    await asyncio.sleep(2.0)  # steady state before the first swap
    swap_s, rss = [], []
    for n in range(swaps):
        swapping = True
        started = time.perf_counter()
        await hub.push_desired({"model": sections[n % 2]})
        state = await hub.wait_update(int(hub.desired["$version"]))
        swap_s.append(time.perf_counter() - started)
        swapping = False
        if state != "active":
            raise RuntimeError(f"swap {n} failed: {hub.reported['modelUpdate']}")
        await asyncio.sleep(0.3)
        rss.append(_rss_mib())
    cam.cancel()
    await asyncio.gather(cam, return_exceptions=True)
    stop.set()
    await task

    latency: dict[str, float] = {}
    outcomes: dict[str, int] = {}
    for output in ("predictions", "errors"):
        for message in hub.sent[output]:
            doc = json.loads(message.body)
            frame_id = doc["frame"]["id"]
            outcomes[frame_id] = outcomes.get(frame_id, 0) + 1
            if output == "predictions":
                latency[frame_id] = doc["timings_ms"]["total"]
    during = [latency[f] for f in in_swap if f in latency]
    outside = [v for f, v in latency.items() if f not in in_swap]
    return SwapRun(
        swap_ms=[t * 1000 for t in swap_s],
        frames=len(arrived),
        predictions=len(hub.sent["predictions"]),
        errors=len(hub.sent["errors"]),
        frames_with_one_outcome=sum(1 for c in outcomes.values() if c == 1),
        in_swap=len(in_swap),
        latency_during=during,
        latency_outside=outside,
        rss_mib=rss,
    )


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=50)
    parser.add_argument("--fps", type=float, default=100.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        r = asyncio.run(run(args.swaps, args.fps, Path(work)))
    swap_ms, rss = r.swap_ms, r.rss_mib
    print(describe_machine())
    print(
        f"default model ({DEFAULT_MODEL.stat().st_size / 1e6:.1f} MB), {args.swaps} swaps, "
        f"camera at {args.fps:g} fps, 320x240 JPEG"
    )
    print(
        f"swap, desired change -> active: first (download + verify + load) {swap_ms[0]:.0f} ms; "
        f"from the cache median {statistics.median(swap_ms[2:]):.0f} ms, "
        f"p90 {_p(swap_ms[2:], 0.9):.0f} ms"
    )
    print(
        f"frames {r.frames}: {r.predictions} predictions, {r.errors} errors, "
        f"{r.frames_with_one_outcome} with exactly one outcome"
    )
    during, outside = r.latency_during, r.latency_outside
    print(
        f"frames that arrived during a swap: {r.in_swap}; latency p50/p99 during swaps "
        f"{_p(during, 0.5):.1f}/{_p(during, 0.99):.1f} ms, "
        f"otherwise {_p(outside, 0.5):.1f}/{_p(outside, 0.99):.1f} ms"
    )
    print(
        f"RSS after swap 5 / {len(rss)}: {rss[4]:.0f} / {rss[-1]:.0f} MiB; median over swaps "
        f"6-15 {statistics.median(rss[5:15]):.0f} MiB, last 10 {statistics.median(rss[-10:]):.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
