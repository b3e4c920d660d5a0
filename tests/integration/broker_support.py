"""Pieces of the broker tests: the real modules as processes on a Mosquitto broker, a camera
publishing on the frames topic, and the operator's view of outcomes by frame id."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from cloud_tools.broker_service import BrokerAddress, BrokerService
from edge_module.hub import OutboundMessage
from edge_module.mqtt_hub import MqttHub
from edge_module.mqtt_settings import MqttSettings
from edge_module.mqtt_topics import output_filter
from tests.conftest import solid_rgb
from tests.integration.e2e_support import REPO_ROOT
from tests.support.module_process import ModuleProcess
from tests.support.mosquitto import PREFIX, USERS, Mosquitto

START_TIMEOUT_S = 120.0  # imports, model warm-up and connect on a busy 2-core machine
# Every module process a test started, so a failing test cannot leave one running.
STARTED: list[ModuleProcess] = []


def red_jpeg() -> bytes:
    bgr = cv2.cvtColor(solid_rgb((230, 20, 20), 64, 48), cv2.COLOR_RGB2BGR)
    return bytes(cv2.imencode(".jpg", bgr)[1].tobytes())


async def start_module(
    module: str, broker: Mosquitto, client_id: str, work_dir: Path, **settings: str
) -> ModuleProcess:
    """``python -m <module>`` on the broker as ``client_id``, its log under ``work_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTEDGE_", "MQTT_"))}
    env |= {"PYTHONPATH": f"{REPO_ROOT / 'modules' / module}:{REPO_ROOT}"}
    env |= broker.module_env(module, client_id) | settings
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"{client_id}.log"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    started = ModuleProcess(module, process, log_path)
    STARTED.append(started)
    return started


def operator_address(broker: Mosquitto) -> BrokerAddress:
    return BrokerAddress(
        broker.host, broker.port, str(broker.ca_path), "operator", USERS["operator"], PREFIX
    )


async def wait_running(
    operator: BrokerService,
    replicas: list[tuple[ModuleProcess, str]],
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Until every replica's retained reported state says running."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = dict((client_id, process) for process, client_id in replicas)
    while pending:
        reported = await asyncio.to_thread(operator.reported, "classifier")
        for client_id in list(pending):
            if (reported.get(client_id) or {}).get("state") == "running":
                del pending[client_id]
        for client_id, process in pending.items():
            if (
                process.process.returncode is not None
                or asyncio.get_running_loop().time() > deadline
            ):
                raise AssertionError(f"{client_id} did not start; its log:\n{process.log()}")
        await asyncio.sleep(0.3)


@dataclass
class Outcomes:
    """Every prediction and error the operator sees, by frame id (the correlation data)."""

    by_frame: defaultdict[str, list[tuple[str, str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def record(self, message: Any) -> None:
        _, _, output, replica = message.topic.split("/")
        correlation = getattr(message.properties, "CorrelationData", b"") or b""
        self.by_frame[correlation.decode()].append((output, replica, message))

    def answered(self, frame_ids: list[str]) -> int:
        return sum(1 for f in frame_ids if self.by_frame.get(f))

    def per_replica(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for outcomes in list(self.by_frame.values()):
            for _, replica, _ in outcomes:
                counts[replica] += 1
        return dict(counts)


async def watch_outcomes(operator: BrokerService) -> Outcomes:
    outcomes = Outcomes()
    for output in ("predictions", "errors"):
        await asyncio.to_thread(operator.subscribe, output_filter(PREFIX, output), outcomes.record)
    return outcomes


@dataclass
class Camera:
    """The frame source's own adapter (``MqttHub`` as user framesource), publishing distinct
    frames and recording which the broker acknowledged."""

    hub: MqttHub
    jpeg: bytes
    tag: str
    acknowledged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # PUBACK 0x10: no subscription matched, so the broker dropped the frame.
    unrouted: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, broker: Mosquitto, client_id: str = "camera-1") -> Camera:
        settings = MqttSettings.from_env(broker.module_env("framesource", client_id))
        hub = MqttHub(settings, asyncio.get_running_loop())
        await hub.connect()
        return cls(hub, red_jpeg(), client_id)

    async def send(
        self, first: int, count: int, window: int = 64, pause_s: float = 0.0
    ) -> list[str]:
        """Frames ``<tag>-<first>`` onwards, ``window`` in flight at once."""
        ids = [f"{self.tag}-{n}" for n in range(first, first + count)]
        for start in range(0, count, window):
            await asyncio.gather(*(self._send_one(f) for f in ids[start : start + window]))
            if pause_s:
                await asyncio.sleep(pause_s)
        return ids

    async def _send_one(self, frame_id: str) -> None:
        message = OutboundMessage(
            self.jpeg,
            content_type="image/jpeg",
            content_encoding="binary",
            message_id=frame_id,
            properties={"source_id": self.tag},
        )
        try:
            code = await asyncio.wait_for(self.hub.publish_output("frames", message), 60)
        except Exception:
            self.failed.append(frame_id)
        else:
            (self.unrouted if code == 0x10 else self.acknowledged).append(frame_id)
