"""A classifier module on an in-process hub, with its model cache, for model-update tests.

Real parts throughout: ONNX Runtime, the module's pipeline, updater, downloader and cache;
models are pushed by changing the hub's desired properties, exactly as the twin would. A
steady camera sends red JPEG frames with ids, so each test can count outcomes per frame.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import cv2

from classifier.app import ClassifierModule
from classifier.config import ModuleConfig
from classifier.engine import file_sha256
from classifier.model_update import start_model
from classifier.model_update.desired import MODEL_KEYS
from edge_module.hub import InboundMessage
from edge_module.local_hub import LocalHub
from simulator.mqtt.testing import eventually
from tests.conftest import solid_rgb

RED_JPEG = bytes(cv2.imencode(".jpg", cv2.cvtColor(solid_rgb((255, 0, 0)), cv2.COLOR_RGB2BGR))[1])


def model_section(path: Path, **extra: Any) -> dict[str, Any]:
    """A whole model section, null for what is not set, as the operator's tool writes it."""
    section = {"url": path.as_uri(), "sha256": file_sha256(path)} | extra
    return {key: section.get(key) for key in MODEL_KEYS}


class ModuleUnderTest:
    """``async with ModuleUnderTest(builtin, cache, env) as m``: started, connected, resynced."""

    def __init__(self, builtin: Path, cache_dir: Path, **env: str) -> None:
        self.env = {
            "MODEL_PATH": str(builtin),
            "MODEL_CACHE_DIR": str(cache_dir),
            "MODEL_MIN_FREE_BYTES": "0",
            "MODEL_DOWNLOAD_BACKOFF_S": "0.01",
            "MAX_WAIT_MS": "2",
        } | env
        self.hub = LocalHub()
        self.stop = asyncio.Event()
        self._sent = 0
        self._camera: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ModuleUnderTest:
        config = ModuleConfig.from_env(self.env)
        startup = await asyncio.to_thread(
            start_model, config.model_path, config.cache_dir, config.engine
        )
        self.module = ClassifierModule.build(self.hub, config, startup)
        self.task = asyncio.create_task(self.module.run(self.stop))
        await asyncio.wait_for(self.hub.ready.wait(), 30)
        await eventually(lambda: "modelUpdate" in self.hub.reported, 30, "the first report")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_camera()
        self.stop.set()
        await asyncio.wait_for(self.task, 60)

    # -- frames -----------------------------------------------------------------------------

    async def send(self, count: int) -> None:
        for _ in range(count):
            self._sent += 1
            message = InboundMessage(
                "frames", RED_JPEG, "image/jpeg", message_id=f"f{self._sent:06d}"
            )
            await self.hub.deliver(message)

    def start_camera(self, fps: float) -> None:
        async def camera() -> None:
            while True:
                await self.send(1)
                await asyncio.sleep(1 / fps)

        self._camera = asyncio.create_task(camera())

    async def stop_camera(self) -> None:
        if self._camera is not None:
            self._camera.cancel()
            await asyncio.gather(self._camera, return_exceptions=True)
            self._camera = None

    async def settle(self) -> None:
        """Waits until every frame sent so far has its outcome."""
        await eventually(lambda: self.outcomes() >= self._sent, 30, "an outcome for every frame")

    @property
    def sent(self) -> int:
        return self._sent

    def predictions(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.hub.sent["predictions"]]

    def errors(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.hub.sent["errors"]]

    def outcomes(self) -> int:
        return len(self.hub.sent["predictions"]) + len(self.hub.sent["errors"])

    def outcomes_per_frame(self) -> Counter[str]:
        return Counter(d["frame"]["id"] for d in self.predictions() + self.errors())

    # -- the twin ---------------------------------------------------------------------------

    async def push(self, section: dict[str, Any] | None, **inference: Any) -> int:
        patch: dict[str, Any] = {"model": section}
        if inference:
            patch["inference"] = inference
        await self.hub.push_desired(patch)
        return int(self.hub.desired["$version"])

    @property
    def update(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.hub.reported.get("modelUpdate") or {}
        return doc

    async def wait_update(
        self, version: int, *states: str, timeout_s: float = 60
    ) -> dict[str, Any]:
        def done() -> bool:
            return self.update.get("desiredVersion") == version and self.update["state"] in states

        await eventually(done, timeout_s, f"modelUpdate {states} for $version {version}")
        return self.update

    @property
    def active(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.hub.reported["model"]
        return doc
