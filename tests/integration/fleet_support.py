# mypy: disallow-untyped-calls=False
"""Shared pieces of the fleet tests: several edge devices on one hub, module stand-ins that
cost milliseconds, deployments as IoT Hub configurations, and the service SDK off the loop.

The service SDK is synchronous and the simulator runs on the test's loop, so every SDK call
goes through ``asyncio.to_thread`` (``call``).
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from azure.iot.hub.models import Configuration, ConfigurationContent

from simulator.device.runtime import ModuleCommand
from simulator.fleet import DeviceSpec, Fleet
from simulator.jsondoc import JsonValue
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import template_manifest

T = TypeVar("T")

# A stand-in for a module image that only has to stay up; -I -S so it starts in milliseconds.
IDLE = ModuleCommand([sys.executable, "-I", "-S", "-c", "import time; time.sleep(300)"])
# One that fails at once (exit code 3).
CRASHING = ModuleCommand([sys.executable, "-I", "-S", "-c", "import sys; sys.exit(3)"])


async def call(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(function, *args)


def devices(*tags: Mapping[str, JsonValue], prefix: str = "edge") -> tuple[DeviceSpec, ...]:
    """One device per tags mapping: edge-1, edge-2, ..."""
    return tuple(DeviceSpec(f"{prefix}-{i}", t) for i, t in enumerate(tags, start=1))


def base_manifest() -> dict[str, Any]:
    """The repository's base deployment (the classifier alone)."""
    manifest = copy.deepcopy(template_manifest())
    content = manifest["modulesContent"]
    del content["$edgeAgent"]["properties.desired"]["modules"]["framesource"]
    routes = content["$edgeHub"]["properties.desired"]["routes"]
    for name in [n for n, route in routes.items() if "framesource" in str(route)]:
        del routes[name]
    return manifest


def sidecar_module() -> dict[str, Any]:
    """A module definition a layer adds (the base's classifier with another image)."""
    agent = base_manifest()["modulesContent"]["$edgeAgent"]["properties.desired"]
    sidecar = copy.deepcopy(agent["modules"]["classifier"])
    sidecar["settings"]["image"] = "registry.invalid/sidecar:1.0-amd64"
    return dict(sidecar)


def layer(
    config_id: str,
    condition: str,
    priority: int,
    content: dict[str, Any],
    metrics: dict[str, str] | None = None,
) -> Configuration:
    from azure.iot.hub.models import ConfigurationMetrics

    return Configuration(
        id=config_id,
        content=ConfigurationContent(modules_content=content),
        target_condition=condition,
        priority=priority,
        metrics=ConfigurationMetrics(queries=metrics or {}),
    )


def reported(fleet: Fleet, device_id: str, module_id: str) -> dict[str, Any]:
    """A twin's reported properties, typed loosely for reading in tests."""
    return dict(fleet.state.twins.reported(device_id, module_id))


def desired(fleet: Fleet, device_id: str, module_id: str) -> dict[str, Any]:
    return dict(fleet.state.twins.desired(device_id, module_id))


def deployment(fleet: Fleet, config_id: str) -> dict[str, Any]:
    """A configuration as the service returns it, with its metrics' results."""
    return dict(fleet.state.configuration(config_id))


def agent_reported(fleet: Fleet, device_id: str) -> dict[str, Any]:
    return reported(fleet, device_id, "$edgeAgent")


def runtime_status(fleet: Fleet, device_id: str, module: str) -> str | None:
    modules = agent_reported(fleet, device_id).get("modules") or {}
    assert isinstance(modules, dict)
    entry = modules.get(module)
    return str(entry.get("runtimeStatus")) if isinstance(entry, dict) else None


async def wait_status(
    fleet: Fleet, device_id: str, module: str, status: str | None, timeout_s: float = 30.0
) -> None:
    """Until ``$edgeAgent`` reports ``module`` in ``status`` (None: not listed at all)."""
    await eventually(
        lambda: runtime_status(fleet, device_id, module) == status,
        timeout_s,
        f"{device_id}/{module} reported {status}",
    )
