"""``python -m simulator``: run the simulated hub and device, read upstream messages, run the demo.

    up        start the hub, edgeHub, workload API, runtime and Blob Storage (Azurite); Ctrl-C stops
    env       print export lines for the operator's tools: eval "$(python -m simulator env)"
    messages  print messages that reached $upstream (``--follow`` to keep reading)
    demo      up + the synthetic camera and classifier, with live predictions and a summary

``up`` and ``demo`` write ``<state-dir>/connection.json`` (hub connection string, CA file):
cloud tools and the azure-iot-hub SDK use it with ``REQUESTS_CA_BUNDLE`` set to the CA file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from cloud_tools.genconfig import GenconfigError, compose
from simulator.app import Simulator, SimulatorSettings
from simulator.cli.demo_summary import Summary, frame_line, observe
from simulator.cli.demo_update import SECOND_VERSION, push_second_version
from simulator.errors import SimulatorError
from simulator.hub.upstream import MessageFilter, UpstreamStore
from simulator.local.modules import (
    CAMERA_LAYER,
    REPO,
    TEMPLATE,
    local_device_manifest,
    repo_module_commands,
)
from simulator.local.tool_env import blob_storage, export_lines, write_connection_info

DEFAULT_STATE = REPO / ".run" / "simulator"


def _settings(args: argparse.Namespace) -> SimulatorSettings:
    return SimulatorSettings(
        state_dir=args.state_dir,
        address=args.address,
        device_id=args.device_id,
        echo_module_output=getattr(args, "echo", False),
    )


def _manifest(args: argparse.Namespace) -> dict[str, Any]:
    """The device's deployment: a base plus layers, as IoT Hub would hand it to edgeAgent.

    From templates, genconfig generates and checks both (local registry variables); from
    generated manifests, the layers are applied as written and the runtime validates the
    result as edgeAgent would, refusing, for one, an image left as ``${MODULES...}``.
    """
    if args.manifest is not None:
        try:
            base = json.loads(args.manifest.read_text())
            layers = [json.loads(path.read_text()) for path in args.layer or ()]
            return compose(base, layers)
        except (json.JSONDecodeError, GenconfigError) as e:
            raise SimulatorError(f"cannot use {args.manifest}: {e}") from e
    layers = args.layer if args.layer is not None else [] if args.base_only else [CAMERA_LAYER]
    try:
        return local_device_manifest(args.template, layers)
    except GenconfigError as e:
        raise SimulatorError(f"cannot deploy {args.template}:\n{e}") from e


def set_module_env(manifest: dict[str, Any], module: str, name: str, value: str) -> None:
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    agent["modules"][module].setdefault("env", {})[name] = {"value": value}


async def _until_stopped(duration_s: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration_s)


async def cmd_up(args: argparse.Namespace) -> int:
    sim = Simulator(_settings(args), repo_module_commands(args.state_dir))
    try:
        await sim.start(_manifest(args))
        async with blob_storage(sim, args.storage_port) as server:
            storage = server.endpoint if server else None
            path = write_connection_info(sim, storage)
            print(
                f"simulator up on {args.address}: edgeHub :8883, service API {sim.hub_connection_string().split(';')[0]}"
            )
            if storage is not None:
                print(f"blob storage (Azurite): {storage.url}")
            print(
                f"connection info: {path}\nmodule logs: {args.state_dir / 'runtime' / 'logs'}\n"
                f'tools: eval "$(python -m simulator env)"\nCtrl-C stops.'
            )
            await _until_stopped(args.duration)
    finally:
        await sim.stop()
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    try:
        lines = export_lines(args.state_dir)
    except FileNotFoundError:
        print(
            f"no simulator state in {args.state_dir}: run 'python -m simulator up'", file=sys.stderr
        )
        return 2
    print("\n".join(lines))
    return 0


async def cmd_messages(args: argparse.Namespace) -> int:
    store_path = args.state_dir / "upstream.sqlite"
    if not store_path.exists():
        print(f"no upstream store at {store_path}: start the simulator first", file=sys.stderr)
        return 2
    store = UpstreamStore.open(store_path)
    where = MessageFilter(module_id=args.module, output_name=args.output)
    try:
        for stored in store.read(after_sequence=0, where=where, limit=args.last or None):
            print(json.dumps(stored.to_json()))
        if args.follow:
            async for stored in store.follow(where=where):
                print(json.dumps(stored.to_json()), flush=True)
    finally:
        store.close()
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    manifest = _manifest(args)
    set_module_env(manifest, "synthcam", "FPS", str(args.fps))
    sim = Simulator(_settings(args), repo_module_commands(args.state_dir))
    summary = Summary()
    try:
        await sim.start(manifest)
        async with blob_storage(sim, args.storage_port) as storage:
            write_connection_info(sim, storage.endpoint if storage else None)
            print(
                f"demo: synthetic camera at {args.fps} fps -> edgeHub -> classifier -> $upstream; Ctrl-C stops"
            )
            assert sim.upstream is not None
            tasks = [asyncio.create_task(_show(sim.upstream, summary, args.quiet))]
            if storage is not None and args.update_after > 0:
                tasks.append(asyncio.create_task(_update_later(args, summary)))
            try:
                await _until_stopped(args.duration)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await sim.stop()
    print("final: " + summary.line())
    if summary.total == 0:
        print(
            f"no predictions arrived: see the module logs in {args.state_dir / 'runtime' / 'logs'}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _update_later(args: argparse.Namespace, summary: Summary) -> None:
    await asyncio.sleep(args.update_after)
    print(f"{summary.line()}\n-- pushing model version {SECOND_VERSION} to the classifier --")
    code = await push_second_version(args.state_dir, args.device_id)
    print(f"-- model push exited {code}; {summary.models_text()} --")


async def _show(store: UpstreamStore, summary: Summary, quiet: bool) -> None:
    last_line = asyncio.get_running_loop().time()
    where = MessageFilter(module_id="classifier")
    async for stored in store.follow(where=where, poll_interval_s=0.2):
        obs = observe(stored)
        if obs is None:
            continue
        summary.add(obs)
        if not quiet:
            print(frame_line(obs))
        now = asyncio.get_running_loop().time()
        if now - last_line >= 2.0:
            print(summary.line(), flush=True)
            last_line = now


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE,
        help=f"default: {DEFAULT_STATE.relative_to(REPO)}",
    )
    parser.add_argument("--log-level", default="warning")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "demo"):
        p = sub.add_parser(name)
        p.add_argument(
            "--address",
            default="127.0.0.1",
            help="loopback address for edgeHub (port 8883) and the service API",
        )
        p.add_argument("--device-id", default="edge-device")
        group = p.add_mutually_exclusive_group()
        group.add_argument(
            "--template",
            type=Path,
            default=TEMPLATE,
            help="deployment template to generate the manifest from",
        )
        group.add_argument(
            "--manifest",
            type=Path,
            help="an already generated deployment manifest (config/deployment.amd64.json)",
        )
        p.add_argument(
            "--layer",
            type=Path,
            action="append",
            help="a layered deployment applied over the base (repeatable): a layered template "
            "with --template, a generated one with --manifest "
            f"(default with --template: {CAMERA_LAYER.relative_to(REPO)})",
        )
        p.add_argument(
            "--base-only", action="store_true", help="no default layer: the base deployment alone"
        )
        p.add_argument("--duration", type=float, help="stop by itself after this many seconds")
        p.add_argument("--echo", action="store_true", help="echo module output with a prefix")
        p.add_argument(
            "--storage-port",
            type=int,
            default=10000,
            help="Blob Storage emulator port on the same address (0: any free port)",
        )
    demo = sub.choices["demo"]
    demo.add_argument("--fps", type=float, default=10.0)
    demo.add_argument("--quiet", action="store_true", help="only the summary lines")
    demo.add_argument(
        "--update-after",
        type=float,
        default=15.0,
        help="push model version 1.1.0 through the operator CLI after this many seconds (0: never)",
    )
    sub.add_parser("env", help="print export lines for the operator's tools (eval them)")
    messages = sub.add_parser("messages")
    messages.add_argument("--follow", action="store_true")
    messages.add_argument("--module")
    messages.add_argument("--output")
    messages.add_argument(
        "--last", type=int, default=0, help="at most this many stored messages first"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "env":
        return cmd_env(args)
    command = {"up": cmd_up, "messages": cmd_messages, "demo": cmd_demo}[args.command]
    try:
        return asyncio.run(command(args))
    except (SimulatorError, OSError) as e:
        print(f"simulator: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
