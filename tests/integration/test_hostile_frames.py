"""Hostile frames through the whole module (real codecs, real ONNX Runtime, in-process hub):
each gets exactly one outcome with its specific code, and the frames around it are scored."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from classifier.frame_queue import OverflowPolicy
from edge_module.errors import OutboundRejectedError
from edge_module.hub import InboundMessage, OutboundMessage
from edge_module.local_hub import LocalHub
from tests.integration.test_module_pipeline import RED, Running, jpeg, png
from tests.unit.test_hostile_images import hidden_frame_header_bomb


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def outcomes(run: Running) -> dict[str, list[dict[str, object]]]:
    """Every outcome by frame id (predictions and errors together)."""
    found: dict[str, list[dict[str, object]]] = {}
    for output in ("predictions", "errors"):
        for doc in run.docs(output):
            found.setdefault(doc["frame"]["id"], []).append(doc)
    return found


def error_code(docs: list[dict[str, object]]) -> str | None:
    error = docs[0].get("error")
    return error["code"] if isinstance(error, dict) else None


GOOD = jpeg(RED)
WHOLE = jpeg(RED, 320, 240)
HOSTILE: dict[str, tuple[bytes, str | None, dict[str, str], str | None]] = {
    # frame id: (body, content type, properties, expected code; None = scored)
    "unset-clock": (GOOD, "image/jpeg", {"capture_time": "0001-01-01T00:00:00+01:00"}, None),
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, "application/json", {}, "malformed_json"),
    "hidden-sof": (hidden_frame_header_bomb(), "image/jpeg", {}, "corrupt_image"),
    "cut-jpeg": (WHOLE[: len(WHOLE) // 2] + b"\xff\xd9", "image/jpeg", {}, "corrupt_image"),
    "gzip": (GOOD, "image/jpeg", {}, "unsupported_content_encoding"),
    "webp-label": (GOOD, "image/webp", {}, None),
    "text": (GOOD, "text/plain", {}, "unsupported_content_type"),
    "odd-width": (
        b"\x00" * 12,
        None,
        {"pixel_format": "gray8", "width": "1_2", "height": "1"},
        "bad_dimensions",
    ),
    "empty": (b"", "image/jpeg", {}, "empty_frame"),
    "many": (
        json.dumps({f"e{i}": b64(GOOD) for i in range(40)}).encode(),
        "application/json",
        {},
        "too_many_entries",
    ),
}


async def test_each_hostile_message_gets_one_outcome_and_the_stream_goes_on(
    colour_model: Path,
) -> None:
    async with Running(colour_model) as run:
        for frame_id, (body, content_type, props, _) in HOSTILE.items():
            await run.send(GOOD, "image/jpeg", message_id=f"before-{frame_id}")
            encoding = "gzip" if frame_id == "gzip" else None
            await run.hub.deliver(
                InboundMessage("frames", body, content_type, encoding, frame_id, None, props)
            )
        await run.send(GOOD, "image/jpeg", message_id="last")
    found = outcomes(run)
    for frame_id, (_, _, _, expected) in HOSTILE.items():
        assert len(found[frame_id]) == 1, frame_id
        assert error_code(found[frame_id]) == expected, frame_id
        assert error_code(found[f"before-{frame_id}"]) is None
    assert error_code(found["last"]) is None
    assert found["unset-clock"][0]["frame"]["capture_time"] is None  # type: ignore[index]


async def test_a_huge_entry_name_still_gives_a_sendable_prediction(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        body = json.dumps({"n" * 200_000: b64(png(RED))}).encode()
        await run.send(body, "application/json", message_id="big")
    [message] = run.hub.sent["predictions"]
    assert len(message.body) < 2_000
    assert json.loads(message.body)["frame"]["name"].startswith("nnn")


async def test_a_fan_out_request_cannot_evict_other_cameras_frames(colour_model: Path) -> None:
    async with Running(colour_model, queue_capacity=4, overflow=OverflowPolicy.DROP_OLDEST) as run:
        # No await in between suspends: the queue fills before the batcher runs.
        for n in range(4):
            await run.send(GOOD, "image/jpeg", message_id=f"a-{n}", source_id="camera-a")
        request = json.dumps({f"e{i}": b64(GOOD) for i in range(3)}).encode()
        await run.send(request, "application/json", message_id="b", source_id="camera-b")
    found = outcomes(run)
    assert all(error_code(found[f"a-{n}"]) is None for n in range(4))
    assert [error_code(found[f"b/e{i}"]) for i in range(3)] == ["dropped_queue_full"] * 3


async def test_a_message_on_an_unknown_input_gets_an_unknown_input_error(
    colour_model: Path,
) -> None:
    async with Running(colour_model) as run:
        await run.hub.deliver(InboundMessage("other", GOOD, "image/jpeg", message_id="elsewhere"))
    assert error_code(outcomes(run)["elsewhere"]) == "unknown_input"


async def test_a_message_delivered_twice_gets_one_outcome(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        for _ in range(2):
            await run.send(GOOD, "image/jpeg", message_id="twice")
        await run.send(png(RED), "image/png", message_id="twice")  # same id, other bytes
    assert len(outcomes(run)["twice"]) == 2
    assert run.pipeline.metrics.counters["messages_redelivered"] == 1


class ExplodingProperties(Mapping[str, str]):
    """Properties that fail on access: stands for any error no check foresaw."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def get(self, key: str, default: object = None) -> str:
        if key == "pixel_format":
            raise RuntimeError("unforeseen")
        return default  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        if key == "pixel_format":  # intake asks whether the property is there at all
            raise RuntimeError("unforeseen")
        return False


async def test_an_unforeseen_error_becomes_an_internal_error_outcome(colour_model: Path) -> None:
    async with Running(colour_model) as run:
        weird = InboundMessage("frames", GOOD, "image/jpeg", None, "weird", None)
        object.__setattr__(weird, "properties", ExplodingProperties())
        await run.hub.deliver(weird)
        await run.send(GOOD, "image/jpeg", message_id="after")
    found = outcomes(run)
    assert error_code(found["weird"]) == "internal_error"
    assert error_code(found["after"]) is None


class RefusingHub(LocalHub):
    """The in-process hub, refusing predictions as edgeHub refuses an oversized message."""

    async def send(self, output: str, message: OutboundMessage) -> None:
        if output == "predictions":
            raise OutboundRejectedError("message too large")
        await super().send(output, message)


async def test_an_outcome_the_hub_refuses_falls_back_to_a_short_error(colour_model: Path) -> None:
    async with Running(colour_model, RefusingHub()) as run:
        await run.send(GOOD, "image/jpeg", message_id="refused")
    [doc] = run.docs("errors")
    assert (doc["frame"]["id"], doc["error"]["code"]) == ("refused", "outcome_not_sendable")
    assert Counter(run.pipeline.metrics.counters)["outbox_fallbacks"] == 1
