# mypy: disallow-untyped-calls=False
"""The classifier module end to end: ``python -m classifier`` started by the simulator's
runtime from the repository's deployment, with the IOTEDGE_* environment and the workload
API (so ``create_from_edge_environment`` runs for real), fed by a test-side SDK client that
plays ``framesource``, its outputs read back upstream.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from azure.iot.device import Message
from azure.iot.hub.models import CloudToDeviceMethod

from simulator.device.runtime import ModuleCommand
from simulator.fleet import Fleet
from simulator.hub.upstream import MessageFilter, StoredMessage
from simulator.mqtt.testing import eventually
from tests.conftest import solid_rgb
from tests.integration.e2e_support import (
    DEVICE,
    REPO_ROOT,
    SDK_SOCKET_LEAK,
    module_client,
    registry_manager,
    running_simulator,
    template_manifest,
    trust_simulator,
)
from tests.support.tiny_models import write_colour_model

pytestmark = SDK_SOCKET_LEAK

START_TIMEOUT_S = 90.0  # imports and model warm-up on a busy 2-core machine
RESULT_TIMEOUT_S = 30.0


def jpeg(colour: tuple[int, int, int], width: int = 64, height: int = 48) -> bytes:
    bgr = cv2.cvtColor(solid_rgb(colour, width, height), cv2.COLOR_RGB2BGR)
    return bytes(cv2.imencode(".jpg", bgr)[1].tobytes())


def module_log(sim: Fleet) -> str:
    path = sim.device(DEVICE).runtime.log_path("classifier")
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"


def reported(sim: Fleet) -> dict[str, Any]:
    section = sim.state.twins.get_for_module(DEVICE, "classifier")["reported"]
    assert isinstance(section, dict)
    return section


@pytest.fixture
async def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    model = write_colour_model(tmp_path / "colour.onnx")
    classifier = ModuleCommand(
        [sys.executable, "-m", "classifier"],
        cwd=REPO_ROOT,
        env={
            "PYTHONPATH": f"{REPO_ROOT / 'modules' / 'classifier'}:{REPO_ROOT}",
            # A tiny real model with known answers, so no test depends on the trained one.
            "MODEL_PATH": str(model),
            "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
        },
    )
    async with running_simulator(template_manifest(), {"classifier": classifier}) as sim:
        trust_simulator(monkeypatch, sim)
        try:
            # The module reports "running" once its model is warm and it is connected.
            await eventually(
                lambda: reported(sim).get("state") == "running",
                START_TIMEOUT_S,
                "the classifier reporting running",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; module log:\n{module_log(sim)}") from None
        yield sim


async def send_frame(sim: Fleet, body: bytes, frame_id: str, **properties: str) -> None:
    async with module_client(sim, "framesource") as camera:
        message = Message(body, message_id=frame_id, content_type="image/jpeg")
        message.custom_properties = dict(properties)
        await camera.send_message_to_output(message, "frames")


async def upstream_for(sim: Fleet, output: str, frame_id: str) -> StoredMessage:
    store = sim.state.upstream
    where = MessageFilter(module_id="classifier", output_name=output)

    def find() -> StoredMessage | None:
        return next(
            (s for s in store.read(where=where) if s.message.correlation_id == frame_id), None
        )

    try:
        await eventually(lambda: find() is not None, RESULT_TIMEOUT_S, f"{output} for {frame_id}")
    except AssertionError as e:
        raise AssertionError(f"{e}; module log:\n{module_log(sim)}") from None
    found = find()
    assert found is not None
    return found


async def test_a_jpeg_frame_yields_a_prediction_in_the_documented_schema(sim: Fleet) -> None:
    await send_frame(sim, jpeg((220, 20, 20)), "frame-red", truth="red", seq="7")
    stored = await upstream_for(sim, "predictions", "frame-red")
    message = stored.message
    assert (message.content_type, message.content_encoding) == ("application/json", "utf-8")
    body: dict[str, Any] = json.loads(message.body)
    assert body["schema"] == "edge-classifier/prediction/1"
    assert body["frame"] == {
        "id": "frame-red",
        "source": "framesource",  # edgeHub's $.cmid: the sending module
        "capture_time": None,
        "width": 64,
        "height": 48,
        "properties": {"truth": "red", "seq": "7"},  # PASSTHROUGH_PROPERTIES in the template
    }
    assert body["model"]["name"] == "colour-test"
    assert body["model"]["provider"] == "CPUExecutionProvider"
    top = body["inferences"][0]
    assert (top["type"], top["subtype"]) == ("classification", "colour-test")
    assert top["classification"]["tag"]["value"] == "red"
    assert top["classification"]["tag"]["confidence"] > 0.5
    assert {"queue", "decode", "preprocess", "inference", "total"} <= set(body["timings_ms"])
    assert body["emitted_at"].endswith("Z")
    properties = dict(message.properties)
    assert float(properties.pop("confidence")) == pytest.approx(
        top["classification"]["tag"]["confidence"], abs=1e-4
    )
    assert properties == {
        "schema": "edge-classifier/prediction/1",
        "model": "colour-test",
        "label": "red",
        "source_id": "framesource",
        "truth": "red",
        "seq": "7",
    }


async def test_a_corrupt_frame_yields_a_corrupt_image_error(sim: Fleet) -> None:
    whole = jpeg((20, 20, 220))
    await send_frame(sim, whole[: len(whole) // 2], "frame-cut")
    stored = await upstream_for(sim, "errors", "frame-cut")
    body = json.loads(stored.message.body)
    assert body["schema"] == "edge-classifier/error/1"
    assert body["frame"]["id"] == "frame-cut"
    assert body["error"]["code"] == "corrupt_image"
    assert dict(stored.message.properties) == {
        "schema": "edge-classifier/error/1",
        "code": "corrupt_image",
    }


async def test_get_status_answers_with_the_model_in_use(sim: Fleet) -> None:
    rm = await registry_manager(sim)
    call = CloudToDeviceMethod(method_name="get_status", response_timeout_in_seconds=20)
    result = await asyncio.to_thread(rm.invoke_device_module_method, DEVICE, "classifier", call)
    assert result.status == 200
    assert result.payload["model"]["name"] == "colour-test"
    assert reported(sim)["model"] == result.payload["model"]
