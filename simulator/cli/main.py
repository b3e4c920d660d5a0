"""``python -m simulator``: run a simulated hub and its IoT Edge devices, read upstream
messages, connect modules of your own, run the demo.

    up          start the hub, N edge devices (edgeHub, workload API, runtime each) and Blob
                Storage (Azurite); Ctrl-C stops. ``--devices 10 --tags site=lab``
    env         print export lines for the operator's tools: eval "$(python -m simulator env)"
    module-env  print the environment a module of your own needs to connect to a device's
                edgeHub (its identity is created through the hub if it does not exist)
    messages    print messages that reached $upstream (``--follow`` to keep reading)
    demo        up + the synthetic camera and classifier, with live predictions and a summary

``up`` and ``demo`` write ``<state-dir>/connection.json`` (hub connection string, CA file,
every device's gateway address): cloud tools and the azure-iot-hub SDK use it with
``REQUESTS_CA_BUNDLE`` set to the CA bundle. The state directory keeps the hub (identities,
twins, deployments, the service port) across restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from simulator.cli.flywheel import add_arguments as add_flywheel_arguments
from simulator.cli.flywheel import cmd_flywheel
from simulator.cli.run import cmd_demo, cmd_up
from simulator.errors import SimulatorError
from simulator.fleet import DEFAULT_DEVICE_ID
from simulator.hub.upstream import MessageFilter, UpstreamStore
from simulator.local.modules import CAMERA_LAYER, REPO, TEMPLATE
from simulator.local.tool_env import export_lines, read_connection_info

DEFAULT_STATE = REPO / ".run" / "simulator"


def _no_state(state_dir: Path) -> int:
    print(f"no simulator state in {state_dir}: run 'python -m simulator up'", file=sys.stderr)
    return 2


def cmd_env(args: argparse.Namespace) -> int:
    try:
        lines = export_lines(args.state_dir)
    except FileNotFoundError:
        return _no_state(args.state_dir)
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
        printed = store.newest(args.last, where) if args.last else store.read(where=where)
        for stored in printed:
            print(json.dumps(stored.to_json()))
        if args.follow:
            # On from what was read, so nothing stored in between is lost.
            last = printed[-1].sequence_number if printed else store.last_sequence()
            async for stored in store.follow(after_sequence=last, where=where):
                print(json.dumps(stored.to_json()), flush=True)
    finally:
        store.close()
    return 0


def cmd_module_env(args: argparse.Namespace) -> int:
    """Export lines for a module of one's own (the development path: connection string + CA)."""
    try:
        info = read_connection_info(args.state_dir)
    except FileNotFoundError:
        return _no_state(args.state_dir)
    devices = {d["deviceId"]: d for d in info.get("devices") or []}
    device_id = args.device or info["deviceId"]
    device = devices.get(device_id)
    if device is None:
        print(f"no device {device_id!r} runs here; devices: {', '.join(devices)}", file=sys.stderr)
        return 2
    key = module_key(info, device_id, args.module)
    connection = (
        f"HostName={info['hubHostName']};GatewayHostName={device['gatewayHostName']};"
        f"DeviceId={device_id};ModuleId={args.module};SharedAccessKey={key}"
    )
    values = {"EdgeHubConnectionString": connection, "EdgeModuleCACertificateFile": info["caFile"]}
    print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in values.items()))
    return 0


def module_key(info: dict[str, object], device_id: str, module_id: str) -> str:
    """The module identity's primary key, through the running hub's service API (the hub
    owns its database), creating the identity as an operator would when it is missing."""
    # Imported here: only this command needs the service SDK.
    from azure.iot.hub import IoTHubRegistryManager
    from msrest.exceptions import HttpOperationError

    os.environ["REQUESTS_CA_BUNDLE"] = str(info.get("caBundle") or info["caFile"])
    registry = IoTHubRegistryManager.from_connection_string(str(info["hubConnectionString"]))
    try:
        try:
            module = registry.get_module(device_id, module_id)
        except HttpOperationError as e:
            if e.response is None or e.response.status_code != 404:
                raise
            module = registry.create_module_with_sas(device_id, module_id, None, None, None)
    except HttpOperationError as e:
        raise SimulatorError(f"the hub refused: {e.response.text if e.response else e}") from e
    except OSError as e:
        raise SimulatorError(f"the hub is not reachable (is 'up' running?): {e}") from e
    return str(module.authentication.symmetric_key.primary_key)


def _loopback(text: str) -> str:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(f"{text} is not a loopback address (127.x.y.z)")
    return text


def _fleet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        type=_loopback,
        default="127.0.0.1",
        help="loopback address of the service API and the first device's edgeHub (port "
        "8883); further devices take the next addresses",
    )
    p.add_argument("--devices", type=int, default=1, help="how many IoT Edge devices (default 1)")
    p.add_argument(
        "--device-id",
        default=DEFAULT_DEVICE_ID,
        help="the device's id; with --devices N, ids are <id>-01 ... <id>-N",
    )
    p.add_argument(
        "--tags",
        action="append",
        help="device twin tags for the devices, name=value[,name=value] (repeatable); "
        "deployments target devices by them",
    )
    p.add_argument(
        "--service-port",
        type=int,
        help="the service API's port (default: the one this state directory used last, so "
        "saved connection strings keep working; any free port the first time; 0: any)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--template",
        type=Path,
        default=TEMPLATE,
        help="base deployment template; its modules' module.json files are looked up in "
        "modules/ beside the template, as in an iotedgedev solution folder (see --modules)",
    )
    group.add_argument(
        "--manifest",
        type=Path,
        help="an already generated base manifest (config/deployment.amd64.json)",
    )
    p.add_argument(
        "--layer",
        type=Path,
        action="append",
        help="a layered deployment for every device (repeatable): a layered template with "
        "--template, a generated one with --manifest "
        f"(default with --template: {CAMERA_LAYER.relative_to(REPO)})",
    )
    p.add_argument(
        "--base-only", action="store_true", help="no default layer: the base deployment alone"
    )
    p.add_argument(
        "--modules",
        type=Path,
        help="with --template: the modules folder (DIR/<name>/module.json) that the templates' "
        "${MODULES.<name>} images come from (default: modules/ beside the template)",
    )
    p.add_argument(
        "--source",
        help="what the frame source reads (its SOURCE_URL): a video file, an image folder, "
        "rtsp://... or http://... (default: the layer's, the synthetic camera; on a state "
        "directory used before, with --redeploy)",
    )
    p.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    p.add_argument("--echo", action="store_true", help="echo module output with a prefix")
    p.add_argument(
        "--storage-port",
        type=int,
        default=10000,
        help="Blob Storage emulator port on the same address (0: any free port)",
    )
    p.add_argument(
        "--runtime",
        choices=("process", "docker"),
        default="process",
        help="how devices run their modules: local processes (default), or containers from "
        "the module images, built and pushed to a local registry first, on the Docker engine "
        "DOCKER_HOST names (scripts/containers.sh up starts one)",
    )
    p.add_argument(
        "--no-build",
        action="store_true",
        help="with --runtime docker: use the images already in this state directory's registry",
    )


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
    up = sub.add_parser("up", help="start the hub and its devices")
    _fleet_arguments(up)
    up.add_argument(
        "--redeploy",
        action="store_true",
        help="create the startup deployments again over an earlier run's, undoing what was "
        "deployed or pushed to their devices since",
    )
    demo = sub.add_parser("demo", help="up + the live demo")
    _fleet_arguments(demo)
    demo.add_argument("--fps", type=float, default=10.0)
    demo.add_argument("--quiet", action="store_true", help="only the summary lines")
    demo.add_argument(
        "--flywheel",
        action="store_true",
        help="the model-quality loop instead: drift, capture, label, fine-tune, gated canary",
    )
    add_flywheel_arguments(demo)
    demo.add_argument(
        "--update-after",
        type=float,
        default=15.0,
        help="push model version 1.1.0 through the operator CLI after this many seconds (0: never)",
    )
    sub.add_parser("env", help="print export lines for the operator's tools (eval them)")
    module_env = sub.add_parser(
        "module-env", help="print the environment a module of your own connects with"
    )
    module_env.add_argument("--module", required=True, help="the module id")
    module_env.add_argument("--device", help="the device (default: the first one)")
    messages = sub.add_parser("messages")
    messages.add_argument("--follow", action="store_true")
    messages.add_argument("--module")
    messages.add_argument("--output")
    messages.add_argument(
        "--last",
        type=int,
        default=0,
        help="print only the newest N stored messages (oldest of them first); default: all",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "env":
            return cmd_env(args)
        if args.command == "module-env":
            return cmd_module_env(args)
        command = {"up": cmd_up, "messages": cmd_messages, "demo": cmd_demo}[args.command]
        if args.command == "demo" and args.flywheel:
            command = cmd_flywheel
        return asyncio.run(command(args))
    except (SimulatorError, OSError) as e:
        print(f"simulator: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
