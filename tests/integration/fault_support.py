# mypy: disallow-untyped-calls=False
"""Pieces of the fault tests: the real classifier process, a camera sending steadily through
the real SDK, and counting outcomes at ``$upstream`` by frame id.

The classifier runs as ``python -m classifier`` on the development path (connection string
and CA file), so the test chooses the gateway it dials: the simulator itself, or a
``TcpProxy`` in front of it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.iot.device import Message
from azure.iot.hub.models import CloudToDeviceMethod

from simulator.fleet import Fleet
from simulator.hub.upstream import MessageFilter
from tests.integration.e2e_support import DEVICE, REPO_ROOT, registry_manager
from tests.support.module_process import ModuleProcess
from tests.support.tiny_models import write_colour_model

START_TIMEOUT_S = 120.0  # imports, model warm-up and connect on a busy 2-core machine
OUTCOME_TIMEOUT_S = 180.0  # generous: reconnects back off by up to the SDK's 10 s interval
SEND_TIMEOUT_S = 10.0


def _reported_state(sim: Fleet) -> Any:
    reported = sim.state.twins.get_for_module(DEVICE, "classifier")["reported"]
    return reported.get("state") if isinstance(reported, dict) else None


async def start_classifier(
    sim: Fleet, gateway_host: str, work_dir: Path, **settings: str
) -> ModuleProcess:
    """``python -m classifier`` dialling ``gateway_host``; returns once it reports running."""
    model = write_colour_model(work_dir / "colour.onnx")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTEDGE_")}
    env |= {
        "PYTHONPATH": f"{REPO_ROOT / 'modules' / 'classifier'}:{REPO_ROOT}",
        "EdgeHubConnectionString": sim.state.registry.module_connection_string(
            DEVICE, "classifier", gateway_host
        ),
        "EdgeModuleCACertificateFile": str(sim.ca_path),
        "MODEL_PATH": str(model),
        **settings,
    }
    log_path = work_dir / "classifier.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "classifier",
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    module = ModuleProcess("classifier", process, log_path)
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while _reported_state(sim) != "running":
        if process.returncode is not None or asyncio.get_running_loop().time() > deadline:
            await module.stop()
            raise AssertionError(f"the classifier did not start; its log:\n{module.log()}")
        await asyncio.sleep(0.2)
    return module


@dataclass
class Camera:
    """Sends the same small JPEG as distinct frames, steadily, through a real SDK client, and
    records which sends edgeHub acknowledged (the send returned without an error)."""

    client: Any
    jpeg: bytes
    tag: str
    fps: float = 20.0
    # Frames sent back to back at the next send, so the fault finds the module busy.
    burst: int = 0
    sent: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    failures: int = 0
    # The longest a send took, acknowledged or not: an outage shorter than SEND_TIMEOUT_S
    # shows here (the SDK holds the send and retries after reconnecting) rather than as a failure.
    longest_send_s: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            frame_id = f"{self.tag}-{number}"
            message = Message(self.jpeg, message_id=frame_id, content_type="image/jpeg")
            self.sent.append(frame_id)
            started = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(
                    self.client.send_message_to_output(message, "frames"), SEND_TIMEOUT_S
                )
            except Exception:  # edgeHub away: not acknowledged, not counted
                self.failures += 1
                await asyncio.sleep(0.2)
            else:
                self.acknowledged.append(frame_id)
            took = asyncio.get_running_loop().time() - started
            self.longest_send_s = max(self.longest_send_s, took)
            if self.burst:
                self.burst -= 1
            else:
                await asyncio.sleep(1 / self.fps)

    def stop(self) -> None:
        self._stop.set()

    async def send_burst(self, count: int) -> None:
        """Sends ``count`` frames back to back and returns once edgeHub acknowledged them."""
        target = len(self.acknowledged) + count
        self.burst = count
        await self.until_acknowledged(target)

    async def until_acknowledged(self, count: int, timeout_s: float = 120.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.acknowledged) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"only {len(self.acknowledged)} of {count} frames acked")
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class OutcomeCounts:
    sent: int
    acknowledged: int
    outcomes: int  # distinct outcome messages (by message id) for acknowledged frames
    missing: tuple[str, ...]  # acknowledged frames without an outcome
    multiple: tuple[str, ...]  # frames with more than one distinct outcome
    transport_duplicates: int  # the same outcome message stored more than once
    errors: int  # of the outcomes, how many were error outcomes

    def line(self, name: str) -> str:
        return (
            f"{name}: sent {self.sent}, acknowledged {self.acknowledged}, outcomes "
            f"{self.outcomes} ({self.errors} errors), missing {len(self.missing)}, "
            f"more than one {len(self.multiple)}, transport duplicates "
            f"{self.transport_duplicates}"
        )


def count_outcomes(sim: Fleet, camera: Camera) -> OutcomeCounts:
    stored = sim.state.upstream.read(where=MessageFilter(module_id="classifier"), limit=1_000_000)
    by_frame: dict[str, set[str]] = defaultdict(set)
    copies = 0
    errors = 0
    for item in stored:
        message = item.message
        frame_id = message.correlation_id or ""
        key = message.message_id or f"#{item.sequence_number}"
        if key in by_frame[frame_id]:
            copies += 1
            continue
        by_frame[frame_id].add(key)
        if item.output_name == "errors" and frame_id in set(camera.acknowledged):
            errors += 1
    acked = camera.acknowledged
    return OutcomeCounts(
        sent=len(camera.sent),
        acknowledged=len(acked),
        outcomes=sum(len(by_frame[f]) for f in acked),
        missing=tuple(f for f in acked if not by_frame.get(f)),
        multiple=tuple(f for f, ids in by_frame.items() if len(ids) > 1),
        transport_duplicates=copies,
        errors=errors,
    )


async def wait_for_outcomes(host_sim: Any, camera: Camera) -> OutcomeCounts:
    """Polls (twice a second: reading the store is not free) until every acknowledged frame
    has an outcome, or the deadline passes; returns the last count either way."""
    deadline = asyncio.get_running_loop().time() + OUTCOME_TIMEOUT_S
    while True:
        counts = count_outcomes(host_sim(), camera)
        if not counts.missing or asyncio.get_running_loop().time() > deadline:
            return counts
        await asyncio.sleep(0.5)


async def module_counters(sim: Fleet) -> dict[str, int]:
    """The classifier's own counters, from its get_status direct method."""
    rm = await registry_manager(sim)
    call = CloudToDeviceMethod(method_name="get_status", response_timeout_in_seconds=20)
    result = await asyncio.to_thread(rm.invoke_device_module_method, DEVICE, "classifier", call)
    counters: dict[str, int] = result.payload["metrics"]["counters"]
    return counters
