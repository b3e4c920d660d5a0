"""``up`` and ``demo``: start a fleet from the command line's options and keep it running.

``up --devices N --tags site=lab`` starts N IoT Edge devices (``edge-device`` for one,
``edge-device-01`` ... for more), each with its own edgeHub on its own loopback address and
its own runtime running the deployment's modules as local processes, and creates on a new hub
the base and layered deployments given (see ``simulator.local.startup``). A restart on the
same state directory keeps what the hub holds, deployments made since included; ``--redeploy``
creates the startup deployments again over it. ``demo`` always does: it shows what it deploys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from simulator import child_processes
from simulator.cli.demo_summary import Summary, frame_line, observe
from simulator.cli.demo_update import SECOND_VERSION, push_second_version
from simulator.device.device import ModuleCommands
from simulator.errors import SimulatorError
from simulator.fleet import DEFAULT_DEVICE_ID, DeviceSpec, Fleet, FleetSettings, StartupDeployment
from simulator.hub.upstream import MessageFilter, UpstreamStore
from simulator.jsondoc import JsonValue
from simulator.local import startup
from simulator.local.containers import ContainerRuntime, container_runtime
from simulator.local.modules import CAMERA_LAYER, repo_module_commands
from simulator.local.registry import RegistryEndpoint
from simulator.local.tool_env import blob_storage, write_connection_info


def device_ids(count: int, name: str) -> list[str]:
    """``name`` for one device; ``name-01``, ``name-02`` ... (as wide as needed) for more."""
    if count < 1:
        raise SimulatorError("--devices must be at least 1")
    if count == 1:
        return [name]
    width = max(2, len(str(count)))
    return [f"{name}-{i:0{width}d}" for i in range(1, count + 1)]


def parse_tags(values: list[str] | None) -> dict[str, JsonValue]:
    """``--tags site=lab,ring=1 --tags demo=x`` -> {"site": "lab", "ring": "1", "demo": "x"}."""
    tags: dict[str, JsonValue] = {}
    for value in values or ():
        for pair in value.split(","):
            name, sep, text = pair.partition("=")
            if not sep or not name.strip():
                raise SimulatorError(f"--tags {value!r}: expected name=value[,name=value]")
            tags[name.strip()] = text.strip()
    return tags


def startup_templates(args: argparse.Namespace) -> list[Path]:
    """The base template and its layers (none when starting from generated manifests)."""
    if args.manifest is not None:
        return []
    layers = args.layer if args.layer is not None else [] if args.base_only else [CAMERA_LAYER]
    return [args.template, *layers]


def startup_deployments(
    args: argparse.Namespace, variables: Mapping[str, str] | None = None
) -> tuple[StartupDeployment, ...]:
    if args.manifest is not None:
        deployments = startup.from_manifests(args.manifest, args.layer or [])
    else:
        template, *layers = startup_templates(args)
        deployments = startup.from_templates(template, layers, args.modules, variables)
    if getattr(args, "source", None):
        if not any(_defines(d, "framesource") for d in deployments):
            raise SimulatorError("--source needs the frame source (the camera layer)")
        deployments = startup.set_module_env(deployments, "framesource", "SOURCE_URL", args.source)
    return deployments


def _defines(deployment: StartupDeployment, module: str) -> bool:
    agent = deployment.content.get("$edgeAgent")
    if not isinstance(agent, dict):
        return False
    desired = agent.get("properties.desired")
    modules = desired.get("modules") if isinstance(desired, dict) else None
    in_base = isinstance(modules, dict) and module in modules
    return in_base or f"properties.desired.modules.{module}" in agent


def fleet_settings(
    args: argparse.Namespace, deployments: tuple[StartupDeployment, ...], *, redeploy: bool
) -> FleetSettings:
    tags = parse_tags(args.tags)
    return FleetSettings(
        state_dir=args.state_dir,
        address=args.address,
        service_port=args.service_port,
        devices=tuple(DeviceSpec(d, tags) for d in device_ids(args.devices, args.device_id)),
        startup=deployments,
        echo_module_output=getattr(args, "echo", False),
        redeploy_startup=redeploy,
    )


async def until_stopped(duration_s: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration_s)


def _print_fleet(fleet: Fleet) -> None:
    print(f"hub {fleet.hub.host_name}: service API https://{fleet.hub.service_api.host_name}")
    shown = list(fleet.devices.values())
    for device in shown[:10]:
        print(
            f"  {device.device_id}: edgeHub {device.address}:8883, logs {device.runtime.logs_dir}"
        )
    if len(shown) > 10:
        print(f"  ... and {len(shown) - 10} more (connection.json lists them all)")
    for note in fleet.notes:
        print(f"note: {note}")


@contextlib.asynccontextmanager
async def module_runtime(args: argparse.Namespace) -> AsyncIterator[ModuleRuntime]:
    """What runs the modules: local processes, or containers (``--runtime docker``: the
    engine, the local registry and the images built and pushed to it)."""
    if args.runtime != "docker":
        yield ModuleRuntime(repo_module_commands, None)
        return
    templates = startup_templates(args)
    async with container_runtime(
        args.state_dir,
        args.address,
        templates,
        build=not args.no_build,
        # A demo starts from the built-in model and leaves no volume behind.
        fresh_volumes=args.command == "demo",
    ) as runtime:
        print(
            f"image registry: https://{runtime.registry.server} (user {runtime.registry.username})"
        )
        ca_file = args.state_dir / "certs" / "ca.pem"
        yield ModuleRuntime(runtime.modules(ca_file), runtime)


@dataclass(frozen=True)
class ModuleRuntime:
    modules: ModuleCommands
    containers: ContainerRuntime | None

    def variables(self) -> Mapping[str, str] | None:
        return self.containers.variables() if self.containers is not None else None

    def registry(self) -> RegistryEndpoint | None:
        return self.containers.registry if self.containers is not None else None


def reap_earlier_run(state_dir: Path) -> None:
    """Stop what an earlier ``up`` or ``demo`` on ``state_dir`` left running when it was
    killed (its modules' children, its Azurite), before they hold ports this run needs."""
    for line in child_processes.reap(state_dir):
        print(f"stopped what an earlier run left: {line}", file=sys.stderr)


async def cmd_up(args: argparse.Namespace) -> int:
    reap_earlier_run(args.state_dir)
    async with module_runtime(args) as runtime:
        return await _up(args, runtime)


async def _up(args: argparse.Namespace, runtime: ModuleRuntime) -> int:
    deployments = startup_deployments(args, runtime.variables())
    settings = fleet_settings(args, deployments, redeploy=args.redeploy)
    fleet = await Fleet.start(settings, runtime.modules)
    try:
        async with blob_storage(fleet, args.storage_port) as server:
            storage = server.endpoint if server else None
            path = write_connection_info(fleet, storage, runtime.registry())
            _print_fleet(fleet)
            if storage is not None:
                print(f"blob storage (Azurite): {storage.url}")
            print(
                f'connection info: {path}\ntools: eval "$(python -m simulator env)"\nCtrl-C stops.',
                flush=True,
            )
            await until_stopped(args.duration)
    finally:
        await fleet.stop()
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    reap_earlier_run(args.state_dir)
    async with module_runtime(args) as runtime:
        return await _demo(args, runtime)


async def _demo(args: argparse.Namespace, runtime: ModuleRuntime) -> int:
    deployments = startup.set_module_env(
        startup_deployments(args, runtime.variables()), "framesource", "FPS", str(args.fps)
    )
    # The demo shows what it deploys: it replaces an earlier run's startup deployments.
    fleet = await Fleet.start(fleet_settings(args, deployments, redeploy=True), runtime.modules)
    summary = Summary()
    first = next(iter(fleet.devices.values()))
    try:
        async with blob_storage(fleet, args.storage_port) as storage:
            write_connection_info(fleet, storage.endpoint if storage else None, runtime.registry())
            print(
                f"demo: synthetic camera at {args.fps} fps -> edgeHub -> classifier -> $upstream; Ctrl-C stops"
            )
            tasks = [asyncio.create_task(_show(fleet.state.upstream, summary, args.quiet))]
            if storage is not None and args.update_after > 0:
                tasks.append(asyncio.create_task(_update_later(args, first.device_id, summary)))
            try:
                await until_stopped(args.duration)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await fleet.stop()
    print("final: " + summary.line())
    if summary.total == 0:
        print(
            f"no predictions arrived: see the module logs in {first.runtime.logs_dir}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _update_later(args: argparse.Namespace, device_id: str, summary: Summary) -> None:
    await asyncio.sleep(args.update_after)
    print(f"{summary.line()}\n-- pushing model version {SECOND_VERSION} to the classifier --")
    code = await push_second_version(args.state_dir, device_id)
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


__all__ = ["DEFAULT_DEVICE_ID", "cmd_demo", "cmd_up", "device_ids", "parse_tags"]
