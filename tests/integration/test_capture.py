"""Capture at the edge against real Azurite: frames a policy chooses reach Blob Storage as
their original bytes plus a sidecar; scoring goes on while storage is down, the overflow is
counted, and capture resumes by itself when storage is back."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from classifier.local_run import classifier_on_local_hub
from edge_module.local_hub import LocalHub
from simulator.mqtt.testing import eventually
from tests.integration.capture_support import (
    EVERY_FRAME,
    azurite,
    capture_config,
    policy_counts,
    send_camera_frames,
)


async def test_chosen_frames_reach_blob_storage_with_their_bytes_and_a_sidecar(
    tmp_path: Path,
) -> None:
    async with azurite(tmp_path) as (storage, endpoint):
        hub = LocalHub({"capture": EVERY_FRAME})
        async with classifier_on_local_hub(
            capture_config(**storage.env(endpoint)), hub=hub
        ) as local:
            sent = await send_camera_frames(local.hub, 0, 6)
            await eventually(
                lambda: policy_counts(hub.reported, "random").get("captured") == 6,
                30,
                "six captures written",
            )
        blobs = await asyncio.to_thread(storage.blobs, endpoint)
    sidecars = [json.loads(body) for name, body in blobs.items() if name.endswith(".json")]
    assert len(sidecars) == 6 and len(blobs) == 12
    for sidecar in sidecars:
        frame = sidecar["frame"]
        assert blobs[frame["blob"]] == sent[frame["id"]], "the original bytes, unchanged"
        assert frame["sha256"] == hashlib.sha256(sent[frame["id"]]).hexdigest()
        assert frame["blob"].startswith("dock-7/") and frame["content_type"] == "image/jpeg"
        assert frame["properties"]["truth"] and (frame["width"], frame["height"]) == (320, 240)
        assert sidecar["policy"] == "random" and sidecar["device"] == "dock-7"
        assert len(sidecar["top_k"]) == 3 and sidecar["model"]["name"] == "seed-cnn-synth10"
    assert hub.reported["capture"]["settings"]["random"]["probability"] == 1.0
    assert local.module.metrics.counters["captures.random"] == 6


async def test_scoring_goes_on_while_storage_is_down_and_capture_resumes_after(
    tmp_path: Path,
) -> None:
    async with azurite(tmp_path) as (storage, endpoint):
        env = storage.env(endpoint) | {"CAPTURE_QUEUE_CAPACITY": "3", "CAPTURE_RETRY_MAX_S": "0.5"}
        hub = LocalHub({"capture": EVERY_FRAME})
        async with classifier_on_local_hub(capture_config(**env), hub=hub) as local:
            await storage.stop()
            await send_camera_frames(local.hub, 0, 20)
            # every frame is scored and sent while nothing can be stored
            await eventually(lambda: len(hub.sent["predictions"]) == 20, 30, "20 predictions")
            await eventually(
                lambda: policy_counts(hub.reported, "random").get("dropped") == 20 - 3 - 1,
                30,
                "the overflow dropped and counted (3 queued, 1 being retried)",
            )
            capture: dict[str, Any] = hub.reported["capture"]
            assert capture["storage"]["state"] == "unavailable"
            assert policy_counts(hub.reported, "random")["dropped_by_reason"] == {"queue_full": 16}
            await storage.start()
            await eventually(
                lambda: policy_counts(hub.reported, "random").get("captured") == 4,
                60,
                "the held captures written once storage is back",
            )
            assert hub.reported["capture"]["storage"]["state"] == "ok"
            assert local.module.metrics.counters["captures_dropped.random"] == 16


async def test_signals_per_model_are_reported(tmp_path: Path) -> None:
    hub = LocalHub()
    async with classifier_on_local_hub(capture_config(), hub=hub) as local:
        await send_camera_frames(local.hub, 0, 10)
        await eventually(lambda: hub.reported.get("signals", {}).get("models"), 10, "signals")
        await eventually(
            lambda: next(iter(hub.reported["signals"]["models"].values()))["frames"] == 10,
            10,
            "ten frames counted",
        )
    signals = next(iter(hub.reported["signals"]["models"].values()))
    assert signals["name"] == "seed-cnn-synth10" and signals["error_rate"] == 0
    assert 0.5 < signals["mean_confidence"] <= 1 and signals["p50_ms"] > 0
    # no storage configured: capture reports why it captures nothing
    assert hub.reported["capture"]["storage"]["state"] == "not_configured"
