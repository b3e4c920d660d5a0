# mypy: disallow-untyped-calls=False
"""The whole model-delivery stack on one machine: the simulator (hub, edgeHub, runtime), the
real classifier process, Azurite for Blob Storage, and the operator's code (cloud_tools) on the
real azure-iot-hub and azure-storage-blob SDKs. A camera sends frames with the real
azure-iot-device SDK, so outcomes can be counted per frame id upstream.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import Message

from classifier.model_update.desired import MODEL_KEYS, SCHEMA_VERSION
from cloud_tools.hub_service import HubService
from cloud_tools.model_storage import UploadedModel, upload_model
from simulator.device.device import DeviceSettings
from simulator.device.runtime import ModuleCommand
from simulator.fleet import Fleet
from simulator.hub.upstream import MessageFilter
from simulator.local.blob_storage import AzuriteServer, BlobEndpoint
from simulator.local.tool_env import blob_storage
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import (
    DEVICE,
    REPO_ROOT,
    module_client,
    running_simulator,
    template_manifest,
)
from tests.integration.model_update_support import RED_JPEG

START_TIMEOUT_S = 90.0


def require_tools() -> bool:
    """CI sets EDGE_REQUIRE_TOOLS=1: a missing Azurite fails there instead of skipping."""
    return os.environ.get("EDGE_REQUIRE_TOOLS") == "1"


def classifier_command(
    builtin: Path, **env: str
) -> Callable[[DeviceSettings], dict[str, ModuleCommand]]:
    """The real module process, its cache in the device's folder (as a volume would be)."""

    def make(device: DeviceSettings) -> dict[str, ModuleCommand]:
        return {
            "classifier": ModuleCommand(
                [sys.executable, "-m", "classifier"],
                cwd=REPO_ROOT,
                env={
                    "PYTHONPATH": f"{REPO_ROOT / 'modules' / 'classifier'}:{REPO_ROOT}",
                    "MODEL_PATH": str(builtin),
                    "MODEL_CACHE_DIR": str(device.state_dir / "volumes" / "classifier-models"),
                    "MODEL_DOWNLOAD_CA_FILE": str(device.ca_file),
                    "MODEL_MIN_FREE_BYTES": "0",
                    "MODEL_DOWNLOAD_BACKOFF_S": "0.05",
                    "MODEL_PROBATION_FRAMES": "10",
                }
                | env,
            )
        }

    return make


@dataclass
class Stack:
    sim: Fleet
    storage_server: AzuriteServer
    hub: HubService
    sent: list[str] = field(default_factory=list)

    @property
    def storage(self) -> BlobEndpoint:
        return self.storage_server.endpoint

    # -- the twin, as the module reports it -------------------------------------------------

    def reported(self) -> dict[str, Any]:
        doc = self.sim.state.twins.get_for_module(DEVICE, "classifier")["reported"]
        assert isinstance(doc, dict)
        return doc

    def update(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.reported().get("modelUpdate") or {}
        return doc

    def active(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.reported().get("model") or {}
        return doc

    async def wait_update(
        self, version: int, *states: str, timeout_s: float = 60
    ) -> dict[str, Any]:
        def done() -> bool:
            update = self.update()
            return update.get("desiredVersion") == version and update.get("state") in states

        try:
            await eventually(done, timeout_s, f"modelUpdate {states} at $version {version}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last: {self.update()}\n{self.module_log()}") from None
        return self.update()

    def module_log(self) -> str:
        path = self.sim.device(DEVICE).runtime.log_path("classifier")
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    # -- the operator's side (cloud_tools on the real service SDKs) -------------------------

    async def upload(self, path: Path, expiry_hours: float = 1.0) -> UploadedModel:
        return await asyncio.to_thread(
            upload_model, path, "models", expiry_hours, self.storage.connection_string()
        )

    async def push(self, **model: Any) -> int:
        section = {key: model.get(key) for key in MODEL_KEYS}
        patch = {"schemaVersion": SCHEMA_VERSION, "model": section}
        return await asyncio.to_thread(self.hub.patch_desired, DEVICE, "classifier", patch)

    async def push_uploaded(self, uploaded: UploadedModel, **extra: Any) -> int:
        fields = {"url": uploaded.url, "sha256": uploaded.sha256, "size": uploaded.size}
        return await self.push(**(fields | extra))

    # -- frames -----------------------------------------------------------------------------

    @asynccontextmanager
    async def camera(self, fps: float) -> AsyncIterator[None]:
        """Sends red frames at ``fps`` through edgeHub while the block runs."""
        async with module_client(self.sim, "framesource") as client:
            await client.connect()

            async def send() -> None:
                while True:
                    frame_id = f"e2e-{len(self.sent):06d}"
                    message = Message(RED_JPEG, message_id=frame_id, content_type="image/jpeg")
                    await client.send_message_to_output(message, "frames")
                    self.sent.append(frame_id)  # acknowledged by edgeHub
                    await asyncio.sleep(1 / fps)

            task = asyncio.create_task(send())
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def outcomes(self) -> tuple[Counter[str], list[dict[str, Any]]]:
        """Outcomes per frame id, and every prediction body, from the upstream store."""
        import json

        per_frame: Counter[str] = Counter()
        predictions = []
        for output in ("predictions", "errors"):
            where = MessageFilter(module_id="classifier", output_name=output)
            for stored in self.sim.state.upstream.read(where=where):
                frame = stored.message.correlation_id or ""
                if frame.startswith("e2e-"):
                    per_frame[frame] += 1
                    if output == "predictions":
                        predictions.append(json.loads(stored.message.body))
        return per_frame, predictions

    async def settle(self, timeout_s: float = 60) -> None:
        await eventually(
            lambda: sum(self.outcomes()[0].values()) >= len(self.sent),
            timeout_s,
            "an outcome upstream for every frame sent",
        )


@asynccontextmanager
async def running_stack(
    builtin: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[Stack]:
    commands = classifier_command(builtin, **env)
    async with (
        running_simulator(template_manifest(), commands) as sim,
        blob_storage(sim, 0) as server,
    ):
        if server is None:
            if require_tools():
                pytest.fail("Azurite is not installed (scripts/bootstrap.sh installs it)")
            pytest.skip("Azurite is not installed: run scripts/bootstrap.sh (needs npm)")
        # The service SDKs trust the simulator's CA (hub API and Azurite) through this.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_path))
        stack = Stack(sim, server, HubService(sim.hub_connection_string()))
        try:
            await eventually(
                lambda: stack.reported().get("state") == "running",
                START_TIMEOUT_S,
                "the classifier running",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{stack.module_log()}") from None
        yield stack
