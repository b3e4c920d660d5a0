# mypy: disallow-untyped-calls=False
"""A simulated device running one small module ("talker") that logs through edge_module's
syslog formatter, and edgeAgent's methods called on it through the real azure-iot-hub SDK."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from cloud_tools.hub_service import HubService
from simulator.device.runtime import ModuleCommand
from simulator.fleet import Fleet
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, REPO_ROOT, running_simulator, trust_simulator
from tests.integration.runtime_support import manifest_content, module

# Logs through the formatter the project's modules use: "<6> 2026-... [INF] talker - started".
# A warning, an error with its traceback, a line written past logging, then a debug tick
# every 50 ms.
TALKER = """
import logging, sys, time
from edge_module.log_format import SyslogSeverityFormatter
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(SyslogSeverityFormatter())
logging.basicConfig(level=logging.DEBUG, handlers=[handler])
log = logging.getLogger("talker")
log.info("started")
log.warning("disk almost full")
try:
    raise RuntimeError("camera lost")
except RuntimeError:
    log.exception("camera failed")
print("a line written without a severity", flush=True)
tick = 0
while True:
    tick += 1
    log.debug("tick %d", tick)
    time.sleep(0.05)
"""
# 200 lines of 1,000 characters at start: more than a direct method may carry uncompressed.
CHATTY = """
import sys, time
for n in range(200):
    print(f"<6> line {n:03d} " + "x" * 990, flush=True)
time.sleep(600)
"""
EDGE_AGENT = "$edgeAgent"


@dataclass
class Device:
    sim: Fleet
    hub: HubService

    async def call(self, method: str, payload: Any = None) -> tuple[int, Any]:
        """(status, payload) of ``$edgeAgent``'s method, through the service SDK."""
        return await asyncio.to_thread(self.hub.invoke, DEVICE, EDGE_AGENT, method, payload, 30)

    async def logs(self, *, item_id: str = "talker", **options: Any) -> list[dict[str, Any]]:
        """GetModuleLogs for one item; ``options`` are the filter, plus encoding/contentType."""
        payload: dict[str, Any] = {"schemaVersion": "1.0"}
        for key in ("encoding", "contentType"):
            if key in options:
                payload[key] = options.pop(key)
        payload["items"] = [{"id": item_id, "filter": options}]
        status, answer = await self.call("GetModuleLogs", payload)
        assert status == 200, answer
        assert isinstance(answer, list)
        return answer

    async def text_lines(self, **options: Any) -> list[str]:
        [entry] = await self.logs(**options)
        text = entry["payload"]
        assert isinstance(text, str)
        return text.splitlines()

    def agent_reported(self) -> dict[str, Any]:
        doc = self.sim.state.twins.get_for_module(DEVICE, EDGE_AGENT)["reported"]
        assert isinstance(doc, dict)
        return doc

    def talker_report(self) -> dict[str, Any]:
        entry = self.agent_reported().get("modules", {}).get("talker", {})
        assert isinstance(entry, dict)
        return entry


def talker_command() -> ModuleCommand:
    return ModuleCommand(
        [sys.executable, "-c", textwrap.dedent(TALKER)],
        env={"PYTHONPATH": str(REPO_ROOT / "libs" / "edge_module")},
    )


def chatty_command() -> ModuleCommand:
    return ModuleCommand([sys.executable, "-I", "-S", "-c", textwrap.dedent(CHATTY)])


@asynccontextmanager
async def talking_device(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Device]:
    """The device with the talker running and some ticks logged (and the chatty module)."""
    content = manifest_content(
        {"talker": module(restart="always"), "chatty": module(restart="always")}
    )
    commands = {"talker": talker_command(), "chatty": chatty_command()}
    async with running_simulator(content, commands) as sim:
        trust_simulator(monkeypatch, sim)
        device = Device(sim, HubService(sim.hub_connection_string()))
        runtime = sim.device(DEVICE).runtime
        await eventually(
            lambda: "tick 5" in runtime.log_path("talker").read_text(errors="replace")
            if runtime.log_path("talker").exists()
            else False,
            30,
            "the talker logging",
        )
        yield device
