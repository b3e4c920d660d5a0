"""Outcomes are measured against edgeHub's limits before they are queued."""

from __future__ import annotations

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta
from classifier.outcome_messages import sendable
from classifier.predictions import FrameFailure, ModelInfo, Prediction
from edge_module.message_size import EDGEHUB_MAX_MESSAGE_BYTES, fits

MODEL = ModelInfo("m", "1", "0" * 64, "CPUExecutionProvider")


def prediction(labels: tuple[tuple[str, float], ...], **meta: object) -> Prediction:
    return Prediction(FrameMeta("f-1", **meta), labels, MODEL, {"total": 1.0}, 10, 10)  # type: ignore[arg-type]


def test_an_ordinary_prediction_is_sent_as_it_is_with_a_fallback_ready() -> None:
    out = sendable(prediction((("cat", 0.9),)), "predictions", "errors")
    assert out.output == "predictions" and out.message.message_id
    assert out.fallback is not None and out.fallback.output == "errors"
    assert out.fallback.message.message_id == out.message.message_id
    assert fits(out.message)


def test_a_prediction_over_edgehubs_limit_becomes_a_short_error() -> None:
    # A model whose labels are enormous: nothing copied from input is that long any more.
    labels = tuple((f"{i}" + "x" * 100_000, 0.1) for i in range(3))
    out = sendable(prediction(labels), "predictions", "errors")
    assert out.output == "errors" and out.fallback is None
    assert b"outcome_not_sendable" in out.message.body
    assert len(out.message.body) < 1_000


def test_properties_count_towards_the_topic_as_url_encoded() -> None:
    failure = FrameFailure(
        FrameMeta("f-1", passthrough={"note": "é" * 6_000}),
        FrameError(FrameErrorCode.CORRUPT_IMAGE, "x"),
    )
    out = sendable(failure, "predictions", "errors")
    # 6,000 characters are 12,000 bytes, 36,000 once URL-encoded: over the topic budget.
    assert b"outcome_not_sendable" in out.message.body
    assert EDGEHUB_MAX_MESSAGE_BYTES == 262_144


def test_every_outcome_gets_its_own_message_id() -> None:
    ids = {sendable(prediction(()), "p", "e").message.message_id for _ in range(100)}
    assert len(ids) == 100
