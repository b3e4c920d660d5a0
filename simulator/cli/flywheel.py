"""``demo --flywheel``: the model-quality loop on a simulated fleet, start to finish.

Three devices run the synthetic camera, the classifier and the local Blob Storage module
(``layered.blobstorage``). Then, as an operator would: measure the model; drift the cameras
(the frame source's twin); let the classifiers capture the frames worth labelling; pull them
(``dataset pull``), label them (``label --oracle truth``: the synthetic ground truth stands in
for a person), fine-tune (``train``), measure again (``evaluate``'s data), and roll the new
model out behind a gated canary (``model rollout --gate``). Every step is timed; the last line
is ``flywheel: drifted accuracy before=X% after=Y% undrifted before=U% after=V%``.

Accuracy is measured offline, on camera streams at a seed of their own (never the frames the
devices captured and trained on): the drifted stream and the same frames undrifted, 1,000 of
each by default. The live signals the devices report are shown beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import synthdata
from cloud_tools.dataset.evaluate import (
    EVAL_SEED,
    EvalSet,
    label_names,
    model_accuracy,
    parse_drift,
)
from cloud_tools.errors import CliError
from cloud_tools.hub_service import HubService
from simulator.cli.demo_update import DEFAULT_MODEL, run_operator
from simulator.fleet import DeviceSpec, Fleet, FleetSettings
from simulator.local import startup
from simulator.local.blob_module import ACCOUNT_NAME, blob_connection_string
from simulator.local.modules import (
    CAMERA_LAYER,
    REPO,
    TEMPLATE,
    local_storage_key,
    repo_module_commands,
)
from simulator.local.tool_env import blob_storage, tool_variables, write_connection_info

BLOB_LAYER = REPO / "layered.blobstorage.template.json"
NEW_VERSION = "1.1.0"
# Frames worth labelling under drift: unsure ones, close calls, and a random share besides.
CAPTURE = {
    "low_confidence": {"below": 0.9, "per_minute": 600},
    "margin": {"below": 0.3, "per_minute": 600},
    "random": {"probability": 0.3, "per_minute": 600},
    "max_bytes_per_day": 512 * 1024 * 1024,
}


class Steps:
    """Times each step and keeps the figures for the closing table."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []

    async def run(self, name: str, step: Callable[[], Awaitable[Any]]) -> Any:
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        result = await step()
        elapsed = time.monotonic() - started
        self.times.append((name, elapsed))
        print(f"-- {name}: {elapsed:.0f} s", flush=True)
        return result


def _streams(drift: synthdata.Drift, frames: int) -> tuple[EvalSet, EvalSet]:
    x, y = synthdata.make_camera_stream(frames, EVAL_SEED, drift)
    drifted = EvalSet("camera, drifted", x, label_names(y))
    x, y = synthdata.make_camera_stream(frames, EVAL_SEED)
    return drifted, EvalSet("camera, undrifted", x, label_names(y))


def _accuracies(model: Path, sets: tuple[EvalSet, EvalSet]) -> tuple[float, float]:
    return model_accuracy(model, sets[0])[0], model_accuracy(model, sets[1])[0]


class Flywheel:
    def __init__(self, args: argparse.Namespace, fleet: Fleet, env: dict[str, str]) -> None:
        self.args = args
        self.fleet = fleet
        # TensorFlow's own start-up chatter would drown the training's lines.
        self.env = {**env, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.hub = HubService(fleet.hub_connection_string())
        self.work: Path = fleet.settings.state_dir / "work"
        self.devices = sorted(fleet.devices)
        self.drift = parse_drift(args.drift)

    def reported(self, device: str, module: str = "classifier") -> dict[str, Any]:
        return dict(self.fleet.state.twins.reported(device, module))

    def live_line(self) -> str:
        parts = []
        for device in self.devices:
            reported = self.reported(device)
            serving = str((reported.get("model") or {}).get("sha256") or "")[:12]
            signals = ((reported.get("signals") or {}).get("models") or {}).get(serving) or {}
            captured = sum(
                int(p.get("captured") or 0)
                for p in ((reported.get("capture") or {}).get("policies") or {}).values()
            )
            parts.append(
                f"{device}: v{signals.get('version', '?')} conf {signals.get('mean_confidence')} "
                f"low {signals.get('low_confidence_share')} captured {captured}"
            )
        return "live  " + " | ".join(parts)

    def captured(self) -> int:
        total = 0
        for device in self.devices:
            policies = (self.reported(device).get("capture") or {}).get("policies") or {}
            total += sum(int(p.get("captured") or 0) for p in policies.values())
        return total

    async def wait_scoring(self) -> None:
        deadline = time.monotonic() + 180
        while not all((self.reported(d).get("signals") or {}).get("models") for d in self.devices):
            if time.monotonic() > deadline:
                raise RuntimeError("the classifiers did not report signals within 180 s")
            await asyncio.sleep(1.0)
        await asyncio.sleep(self.args.window_s)
        print(self.live_line(), flush=True)

    async def drift_on(self) -> None:
        for n, device in enumerate(self.devices):
            source = {f"drift_{k}": v for k, v in self.drift.to_dict().items() if v}
            # Each camera its own scenes: three devices showing the same frames teach less.
            source["seed"] = 1_000 + n
            print(f"operator> twin {device}/framesource desired source = {source}")
            await asyncio.to_thread(
                self.hub.patch_desired, device, "framesource", {"source": source}
            )
            print(f"operator> twin {device}/classifier desired capture = {CAPTURE}")
            await asyncio.to_thread(
                self.hub.patch_desired, device, "classifier", {"capture": CAPTURE}
            )

    async def capture(self) -> None:
        deadline = time.monotonic() + self.args.capture_timeout_s
        while self.captured() < self.args.captures and time.monotonic() < deadline:
            await asyncio.sleep(5.0)
            print(self.live_line(), flush=True)
        print(f"{self.captured()} frames captured on the devices")

    async def pull_and_label(self) -> Path:
        data = self.work / "data"
        shutil.rmtree(data, ignore_errors=True)
        for device in self.devices:
            address = self.fleet.devices[device].address
            local = blob_connection_string(address, ACCOUNT_NAME, local_storage_key())
            env = {**self.env, "AZURE_STORAGE_CONNECTION_STRING": local}
            await self._operator(env, "dataset", "pull", str(data), "--device", device)
        await self._operator(self.env, "dataset", "stats", str(data))
        await self._operator(self.env, "label", str(data), "--oracle", "truth")
        return data

    async def train(self, data: Path) -> Path:
        model = self.work / f"seed-cnn-synth10-{NEW_VERSION}.onnx"
        await self._operator(
            self.env, "train", "--init-from", str(DEFAULT_MODEL), "--labels",
            str(data / "labels.jsonl"), "--out", str(model), "--version", NEW_VERSION,
            "--epochs", str(self.args.epochs),
        )  # fmt: skip
        return model

    async def rollout(self, model: Path) -> None:
        await self._operator(
            self.env, "model", "rollout", "--name", "flywheel-1-1-0", "--target-condition",
            "tags.capture='on'", "--priority", "30", "--model", str(model),
            "--canary-percent", "33", "--gate", self.args.gate, "--canary-window-s",
            str(self.args.window_s), "--gate-min-frames", "50", "--timeout", "600",
        )  # fmt: skip
        await asyncio.sleep(self.args.window_s)
        print(self.live_line(), flush=True)

    async def _operator(self, env: dict[str, str], *args: str) -> None:
        code = await run_operator(env, *args)
        if code != 0:
            raise RuntimeError(f"cloud_tools {args[0]} exited {code}")


async def cmd_flywheel(args: argparse.Namespace) -> int:
    deployments = startup.from_templates(TEMPLATE, [CAMERA_LAYER, BLOB_LAYER])
    deployments = startup.set_module_env(deployments, "framesource", "FPS", str(args.fps))
    # Live signals over a short window, reported often: the demo shows them change in seconds.
    for name, value in (("SIGNALS_WINDOW_S", args.window_s), ("QUALITY_REPORT_S", 2)):
        deployments = startup.set_module_env(deployments, "classifier", name, str(value))
    devices = tuple(DeviceSpec(f"edge-device-0{i}", {"capture": "on"}) for i in (1, 2, 3))
    # A fleet of its own, new at every run: a model rolled out or cached by an earlier run
    # must not be where this one starts.
    root = args.state_dir / "flywheel"
    shutil.rmtree(root, ignore_errors=True)
    settings = FleetSettings(
        state_dir=root,
        address=args.address,
        service_port=args.service_port,
        devices=devices,
        startup=deployments,
        redeploy_startup=True,
    )
    steps = Steps()
    fleet = await steps.run("start 3 devices", lambda: Fleet.start(settings, repo_module_commands))
    try:
        async with blob_storage(fleet, 0) as storage:
            write_connection_info(fleet, storage.endpoint if storage else None)
            tools = tool_variables(root)
            # This process writes the twins as the operator's shell would after
            # ``eval "$(python -m simulator env)"``: the service SDK trusts the simulator's CA.
            os.environ["REQUESTS_CA_BUNDLE"] = tools["REQUESTS_CA_BUNDLE"]
            try:
                return await _story(args, steps, Flywheel(args, fleet, {**os.environ, **tools}))
            except (RuntimeError, CliError) as e:
                print(f"flywheel: stopped: {e}", file=sys.stderr)
                return 1
    finally:
        await fleet.stop()


async def _story(args: argparse.Namespace, steps: Steps, wheel: Flywheel) -> int:
    sets = await steps.run(
        "render the evaluation streams",
        lambda: asyncio.to_thread(_streams, wheel.drift, args.eval_frames),
    )
    await steps.run("modules up, classifiers scoring (no drift)", wheel.wait_scoring)
    before = await steps.run(
        "measure the default model",
        lambda: asyncio.to_thread(_accuracies, DEFAULT_MODEL, sets),
    )
    print(f"default model: drifted {before[0]:.1%}, undrifted {before[1]:.1%}")
    await steps.run(f"drift on ({args.drift}) and capture policies", wheel.drift_on)
    await steps.run(f"capture {args.captures} frames", wheel.capture)
    data = await steps.run("pull the captures and label them (oracle)", wheel.pull_and_label)
    model = await steps.run("fine-tune", lambda: wheel.train(data))
    after = await steps.run(
        "measure the new model", lambda: asyncio.to_thread(_accuracies, model, sets)
    )
    await steps.run("gated canary rollout to the fleet", lambda: wheel.rollout(model))
    print("\n| step | seconds |\n|---|---|")
    for name, elapsed in steps.times:
        print(f"| {name} | {elapsed:.0f} |")
    print(
        f"\n| model | drifted camera | undrifted camera |\n|---|---|---|\n"
        f"| default 1.0.0 | {before[0]:.1%} | {before[1]:.1%} |\n"
        f"| fine-tuned {NEW_VERSION} | {after[0]:.1%} | {after[1]:.1%} |"
    )
    print(
        f"flywheel: drifted accuracy before={before[0]:.1%} after={after[0]:.1%} "
        f"undrifted before={before[1]:.1%} after={after[1]:.1%}"
    )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--drift", default="lighting=1", help="the cameras' drift (evaluate's form)"
    )
    parser.add_argument("--captures", type=int, default=1500, help="frames to capture")
    parser.add_argument("--capture-timeout-s", type=float, default=300.0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--eval-frames", type=int, default=1000)
    parser.add_argument("--window-s", type=float, default=10.0, help="live signal windows")
    parser.add_argument(
        "--gate", default="mean_confidence>=0.85,error_rate<=0.01", help="the canary's gate"
    )
