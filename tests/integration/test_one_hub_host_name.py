# mypy: disallow-untyped-calls=False
"""One host name for the hub, as on IoT Hub: the ``HostName`` of the service connection string
that ``python -m simulator env`` exports also names the hub in module connection strings
(``HostName`` + ``GatewayHostName``, as iotedgehubdev builds them), and ``module-env`` prints it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from simulator.fleet import Fleet
from simulator.local.tool_env import write_connection_info
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    module_client,
    running_simulator,
)

pytestmark = SDK_SOCKET_LEAK


@pytest.fixture
async def sim() -> AsyncIterator[Fleet]:
    async with running_simulator(None) as sim:
        yield sim


def field(connection_string: str, name: str) -> str:
    fields = dict(part.split("=", 1) for part in connection_string.split(";"))
    return fields[name]


async def simulator_cli(sim: Fleet, *args: str) -> dict[str, str]:
    """The ``export`` lines a simulator command prints, as a dict (run without blocking the
    loop the hub runs on: module-env calls the hub's service API)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--state-dir",
        str(sim.settings.state_dir),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    exports = [line.removeprefix("export ") for line in out.decode().splitlines()]
    return {name: value.strip("'") for name, _, value in (e.partition("=") for e in exports)}


async def test_a_module_connection_string_built_as_for_azure_connects(sim: Fleet) -> None:
    host = field(sim.hub_connection_string(), "HostName")
    key = sim.state.registry.add_module(DEVICE, "mymodule").primary_key
    connection_string = (
        f"HostName={host};GatewayHostName={sim.device(DEVICE).address};"
        f"DeviceId={DEVICE};ModuleId=mymodule;SharedAccessKey={key}"
    )
    async with module_client(sim, "mymodule", connection_string=connection_string) as client:
        await client.connect()
        twin = await client.get_twin()
    assert "desired" in twin


async def test_module_env_prints_the_host_name_that_env_exports(sim: Fleet) -> None:
    write_connection_info(sim, None)
    tools = await simulator_cli(sim, "env")
    module = await simulator_cli(sim, "module-env", "--module", "mine")
    connection_string = module["EdgeHubConnectionString"]
    assert field(connection_string, "HostName") == field(
        tools["IOTHUB_CONNECTION_STRING"], "HostName"
    )
    async with module_client(sim, "mine", connection_string=connection_string) as client:
        await client.connect()
        assert "desired" in await client.get_twin()
