"""The whole module over an in-process hub: real codecs, real ONNX Runtime, real schemas."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import pytest
from PIL import Image

from classifier.config import ModuleConfig
from classifier.frame_queue import OverflowPolicy
from classifier.local_run import classifier_on_local_hub
from edge_module.errors import HubError
from edge_module.hub import InboundMessage, OutboundMessage
from edge_module.local_hub import LocalHub
from tests.conftest import solid_rgb

RED, GREEN, BLUE = (220, 20, 20), (20, 220, 20), (20, 20, 220)


def jpeg(rgb_colour, w=64, h=48) -> bytes:
    bgr = cv2.cvtColor(solid_rgb(rgb_colour, w, h), cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr)[1].tobytes()


def png(rgb_colour, w=64, h=48) -> bytes:
    out = io.BytesIO()
    Image.fromarray(solid_rgb(rgb_colour, w, h)).save(out, format="PNG")
    return out.getvalue()


class Running:
    """A module on a LocalHub, started on entering; leaving stops it and drains."""

    def __init__(self, model: Path, hub: LocalHub | None = None, **pipeline: object) -> None:
        config = ModuleConfig.from_env({"MODEL_PATH": str(model)})
        self.config = replace(config, pipeline=replace(config.pipeline, **pipeline))  # type: ignore[arg-type]
        self.hub = hub or LocalHub()
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Running:
        local = await self._stack.enter_async_context(
            classifier_on_local_hub(self.config, hub=self.hub)
        )
        self.module = local.module
        self.pipeline = local.module.pipeline
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def send(self, body: bytes, content_type: str | None = None, **props: str) -> None:
        msg_id = props.pop("message_id", None)
        await self.hub.deliver(
            InboundMessage("frames", body, content_type, message_id=msg_id, properties=props)
        )

    def docs(self, output: str) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.hub.sent[output]]


async def test_each_input_format_is_scored_with_the_right_label(colour_model: Path) -> None:
    raw = solid_rgb(GREEN, 16, 8)
    requests = {
        "jpeg": (jpeg(RED), "image/jpeg", {}),
        "png": (png(BLUE), "image/png", {}),
        "bmp": (
            cv2.imencode(".bmp", cv2.cvtColor(solid_rgb(GREEN), cv2.COLOR_RGB2BGR))[1].tobytes(),
            None,
            {},
        ),
        "rgb24": (
            raw.tobytes(),
            "application/octet-stream",
            {"pixel_format": "rgb24", "width": "16", "height": "8"},
        ),
        "bgr24": (
            raw[:, :, ::-1].tobytes(),
            None,
            {"pixel_format": "bgr24", "width": "16", "height": "8"},
        ),
    }
    async with Running(colour_model) as run:
        for name, (body, ctype, props) in requests.items():
            await run.send(body, ctype, message_id=name, **props)
    labels = {
        d["frame"]["id"]: d["inferences"][0]["classification"]["tag"]["value"]
        for d in run.docs("predictions")
    }
    assert labels == {
        "jpeg": "red",
        "png": "blue",
        "bmp": "green",
        "rgb24": "green",
        "bgr24": "green",
    }
    assert run.docs("errors") == []


async def test_json_scoring_contract_scores_all_entries(colour_model: Path) -> None:
    body = json.dumps(
        {
            "r.jpg": base64.b64encode(jpeg(RED)).decode(),
            "b.png": base64.b64encode(png(BLUE)).decode(),
        }
    )
    async with Running(colour_model) as run:
        await run.send(body.encode(), "application/json", message_id="req-1")
    by_name = {d["frame"]["name"]: d for d in run.docs("predictions")}
    assert by_name["r.jpg"]["inferences"][0]["classification"]["tag"]["value"] == "red"
    assert by_name["b.png"]["inferences"][0]["classification"]["tag"]["value"] == "blue"
    assert by_name["b.png"]["frame"]["id"] == "req-1/b.png"


async def test_prediction_message_follows_the_documented_schema(colour_model: Path) -> None:
    async with Running(colour_model, top_k=2) as run:
        await run.send(
            jpeg(RED, 640, 480),
            "image/jpeg",
            message_id="f-17",
            camera_id="dock-3",
            capture_time="2024-05-01T10:00:00Z",
        )
    [message] = run.hub.sent["predictions"]
    assert message.content_type == "application/json" and message.content_encoding == "utf-8"
    assert message.correlation_id == "f-17"
    assert message.properties["label"] == "red"
    assert float(message.properties["confidence"]) > 0.9
    assert message.properties["source_id"] == "dock-3"
    doc = json.loads(message.body)
    assert doc["schema"] == "edge-classifier/prediction/1"
    assert doc["frame"] == {
        "id": "f-17",
        "source": "dock-3",
        "capture_time": "2024-05-01T10:00:00.000Z",
        "width": 640,
        "height": 480,
    }
    assert doc["model"]["name"] == "colour-test" and len(doc["model"]["sha256"]) == 64
    assert doc["model"]["provider"] == "CPUExecutionProvider"
    first, second = doc["inferences"]
    assert first == {
        "type": "classification",
        "subtype": "colour-test",
        "classification": {
            "tag": {"value": "red", "confidence": first["classification"]["tag"]["confidence"]}
        },
    }
    assert (
        first["classification"]["tag"]["confidence"]
        >= second["classification"]["tag"]["confidence"]
    )
    assert {"queue", "decode", "preprocess", "inference", "total"} <= doc["timings_ms"].keys()


async def test_confidence_threshold_leaves_no_label_property_when_nothing_passes(
    colour_model: Path,
) -> None:
    gray = solid_rgb((128, 128, 128))
    async with Running(colour_model, confidence_threshold=0.9) as run:
        await run.send(gray.tobytes(), None, pixel_format="rgb24", width="64", height="48")
    [message] = run.hub.sent["predictions"]
    assert "label" not in message.properties
    assert json.loads(message.body)["inferences"] == []


async def test_bad_frames_are_reported_and_never_stop_the_stream(colour_model: Path) -> None:
    bad = {
        "empty": (b"", "image/jpeg", {}, "empty_frame"),
        "text": (b"plain words", None, {}, "unrecognised_format"),
        "ctype": (jpeg(RED), "video/mp4", {}, "unsupported_content_type"),
        "trunc": (jpeg(RED)[:200], "image/jpeg", {}, "corrupt_image"),
        "json": (b"{oops", "application/json", {}, "malformed_json"),
        "raw": (
            b"\x00" * 7,
            None,
            {"pixel_format": "rgb24", "width": "2", "height": "2"},
            "raw_size_mismatch",
        ),
        "yuv": (
            b"\x00" * 7,
            None,
            {"pixel_format": "nv12", "width": "2", "height": "2"},
            "unsupported_raw_format",
        ),
    }
    async with Running(colour_model) as run:
        for name, (body, ctype, props, _) in bad.items():
            await run.send(body, ctype, message_id=name, **props)
            await run.send(jpeg(BLUE), "image/jpeg", message_id=f"after-{name}")
    errors = {d["frame"]["id"]: d for d in run.docs("errors")}
    assert {k: v["error"]["code"] for k, v in errors.items()} == {k: v[3] for k, v in bad.items()}
    assert all(
        d["schema"] == "edge-classifier/error/1" and d["error"]["reason"] for d in errors.values()
    )
    good = run.docs("predictions")
    assert sorted(d["frame"]["id"] for d in good) == sorted(f"after-{k}" for k in bad)
    counters = run.pipeline.metrics.snapshot()["counters"]
    assert counters["frames_failed.corrupt_image"] == 1 and counters["frames_scored"] == len(bad)


async def test_error_messages_carry_the_code_as_a_routable_property(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        await run.send(b"junk", None, message_id="j1")
    [message] = run.hub.sent["errors"]
    assert message.properties["code"] == "unrecognised_format" and message.correlation_id == "j1"


async def test_frames_are_grouped_into_micro_batches(colour_model: Path) -> None:
    async with Running(colour_model, max_batch=8, max_wait_ms=200.0) as run:
        for i in range(16):
            await run.send(jpeg(RED), "image/jpeg", message_id=str(i))
    sizes = [d["timings_ms"]["batch_size"] for d in run.docs("predictions")]
    assert len(sizes) == 16 and max(sizes) == 8


async def test_overflow_with_drop_oldest_reports_each_dropped_frame(colour_model: Path) -> None:
    run = Running(
        colour_model, queue_capacity=2, overflow=OverflowPolicy.DROP_OLDEST, max_wait_ms=50.0
    )
    async with run:
        for i in range(30):  # delivered in one go: the queue overflows before the batcher runs
            run.pipeline.metrics.count("test_marker")
            await run.send(jpeg(RED), "image/jpeg", message_id=str(i))
    dropped = [d for d in run.docs("errors") if d["error"]["code"] == "dropped_queue_full"]
    scored = run.docs("predictions")
    assert dropped and len(dropped) + len(scored) == 30
    assert run.pipeline.metrics.snapshot()["counters"]["frames_dropped"] == len(dropped)
    assert "29" in {d["frame"]["id"] for d in scored}  # the newest frame survives


async def test_stop_scores_queued_frames_within_the_grace_period(colour_model: Path) -> None:
    run = Running(colour_model, max_batch=1, overflow=OverflowPolicy.BLOCK, queue_capacity=100)
    async with run:
        for i in range(20):
            await run.send(jpeg(RED), "image/jpeg", message_id=str(i))
    assert len(run.docs("predictions")) == 20 and run.docs("errors") == []
    assert run.hub.reported["state"] == "stopped"


async def test_frames_left_after_the_grace_period_are_reported_not_lost(colour_model: Path) -> None:
    run = Running(colour_model, max_batch=1, overflow=OverflowPolicy.BLOCK, queue_capacity=1000)
    run.config = replace(run.config, shutdown_grace_s=0.0)
    async with run:
        for i in range(200):
            await run.send(jpeg(RED), "image/jpeg", message_id=str(i))
    scored, errors = run.docs("predictions"), run.docs("errors")
    assert len(scored) + len(errors) == 200
    assert errors and {e["error"]["code"] for e in errors} == {"not_scored_shutdown"}


async def test_messages_after_stop_are_refused_with_a_shutdown_error(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        pass
    run.hub.connected = True  # emulate a late delivery racing the shutdown
    run.hub.sent.clear()
    await run.pipeline.submit(InboundMessage("frames", jpeg(RED), "image/jpeg", message_id="late"))
    assert run.pipeline.metrics.snapshot()["counters"]["frames_failed.not_scored_shutdown"] == 1


async def test_module_reports_its_model_and_answers_get_status(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        assert run.hub.reported["state"] == "running"
        assert run.hub.reported["model"]["name"] == "colour-test"
        await run.send(jpeg(RED), "image/jpeg")
        await asyncio.sleep(0.1)
        result = await run.hub.call_method("get_status", {})
        missing = await run.hub.call_method("reboot", {})
    assert result.status == 200 and result.payload["metrics"]["counters"]["frames_scored"] == 1
    assert missing.status == 404


async def test_a_failed_send_is_retried_from_the_outbox_in_order(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        original = run.hub.send
        calls = 0

        async def flaky(output: str, message: OutboundMessage) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise HubError("edgeHub went away")
            await original(output, message)

        run.hub.send = flaky  # type: ignore[method-assign]
        await run.send(jpeg(RED), "image/jpeg", message_id="first")
        await asyncio.sleep(0.05)
        await run.send(jpeg(RED), "image/jpeg", message_id="second")
    assert [d["frame"]["id"] for d in run.docs("predictions")] == ["first", "second"]
    counters = run.pipeline.metrics.snapshot()["counters"]
    assert counters["outbox_retries"] == 1 and counters["outbox_sent"] == 2


async def test_passthrough_properties_are_echoed_on_predictions_and_errors(
    colour_model: Path,
) -> None:
    async with Running(colour_model, passthrough_properties=("lot", "label")) as run:
        await run.send(
            jpeg(RED), "image/jpeg", message_id="ok", lot="L-7", label="upstream-guess", other="x"
        )
        await run.send(b"junk", None, message_id="bad", lot="L-8")
    [prediction] = run.hub.sent["predictions"]
    assert prediction.properties["lot"] == "L-7"
    assert prediction.properties["label"] == "red"  # the module's own property wins
    assert "other" not in prediction.properties
    assert json.loads(prediction.body)["frame"]["properties"] == {
        "lot": "L-7",
        "label": "upstream-guess",
    }
    [error] = run.hub.sent["errors"]
    assert error.properties["lot"] == "L-8"


async def test_a_module_that_fails_while_starting_raises_instead_of_waiting(
    colour_model: Path,
) -> None:
    class RefusingHub(LocalHub):
        def on_message(self, handler: Any) -> None:
            raise RuntimeError("input refused")

    config = ModuleConfig.from_env({"MODEL_PATH": str(colour_model)})
    with pytest.raises(RuntimeError, match="input refused"):
        async with classifier_on_local_hub(config, hub=RefusingHub()):
            pytest.fail("the block ran although the module never started")
