"""The classifier redeems claim checks: a frame on the shared volume is scored as if it had
come in the message, and a reference that cannot be redeemed gets its own error code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from classifier.config import ModuleConfig
from classifier.local_run import classifier_on_local_hub
from edge_module.claim_check import CLAIM_CHECK_CONTENT_TYPE, ClaimReference, ClaimStore
from edge_module.hub import InboundMessage
from edge_module.local_hub import LocalHub
from framesource.sources.synthetic import make_frame


@asynccontextmanager
async def classifier(env: dict[str, str]) -> AsyncIterator[LocalHub]:
    config = ModuleConfig.from_env({"OVERFLOW_POLICY": "block", "MODEL_CACHE_DIR": "off"} | env)
    async with classifier_on_local_hub(config) as local:
        yield local.hub


def reference_message(reference: ClaimReference, frame_id: str) -> InboundMessage:
    return InboundMessage(
        "frames",
        reference.to_message_body(),
        CLAIM_CHECK_CONTENT_TYPE,
        "utf-8",
        message_id=frame_id,
        properties={"source_id": "cam", "truth": "x"},
    )


def outcomes(hub: LocalHub, output: str) -> list[dict[str, Any]]:
    return [json.loads(m.body) for m in hub.sent[output]]


async def test_a_claim_check_is_scored_like_the_frame_itself_and_its_file_released(
    tmp_path: Path,
) -> None:
    frame = make_frame("cam", 9, 2, 1280, 720, 95)
    reference, _ = ClaimStore(tmp_path).deposit(frame.jpeg, "image/jpeg", "cam-1")
    async with classifier({"CLAIM_CHECK_DIR": str(tmp_path)}) as hub:
        await hub.deliver(reference_message(reference, "cam-1"))
        await hub.deliver(InboundMessage("frames", frame.jpeg, "image/jpeg", message_id="cam-2"))
    [claimed, direct] = outcomes(hub, "predictions")
    assert claimed["frame"]["id"] == "cam-1" and direct["frame"]["id"] == "cam-2"
    assert claimed["inferences"] == direct["inferences"]
    assert list(tmp_path.iterdir()) == []


async def test_a_missing_an_altered_and_a_malformed_claim_check_each_get_their_code(
    tmp_path: Path,
) -> None:
    store = ClaimStore(tmp_path)
    jpeg = make_frame("cam", 9, 2, 320, 240, 90).jpeg
    missing, _ = store.deposit(jpeg, "image/jpeg", "gone")
    (tmp_path / missing.name).unlink()
    altered, _ = store.deposit(jpeg, "image/jpeg", "altered")
    (tmp_path / altered.name).write_bytes(jpeg[:-10] + b"0123456789")
    async with classifier({"CLAIM_CHECK_DIR": str(tmp_path)}) as hub:
        await hub.deliver(reference_message(missing, "f-missing"))
        await hub.deliver(reference_message(altered, "f-altered"))
        bad = reference_message(missing, "f-bad")
        await hub.deliver(
            InboundMessage(
                "frames", b'{"claimCheck": {"name": "../x"}}', bad.content_type, message_id="f-bad"
            )
        )
    codes = {e["frame"]["id"]: e["error"]["code"] for e in outcomes(hub, "errors")}
    assert codes == {
        "f-missing": "claim_check_missing",
        "f-altered": "claim_check_altered",
        "f-bad": "claim_check_invalid",
    }
    assert not hub.sent["predictions"]


async def test_a_module_without_the_volume_says_so(tmp_path: Path) -> None:
    reference, _ = ClaimStore(tmp_path).deposit(b"\xff\xd8\xff\xe0", "image/jpeg", "x")
    async with classifier({"CLAIM_CHECK_DIR": "off"}) as hub:
        await hub.deliver(reference_message(reference, "f-1"))
    [error] = outcomes(hub, "errors")
    assert error["error"]["code"] == "claim_check_unavailable"
