"""Outcomes as messages edgeHub will take, each with a short fallback for the same frame.

Why: an outcome that edgeHub or the SDK refuses is a frame without an answer. Copied input is
bounded where it enters (``bounded_text``), but a prediction also carries the model's labels
and every passthrough property, so each message is measured against edgeHub's limit before
it is queued; one that does not fit, or that the hub still refuses when sent (``Outbox``),
is replaced by a short ``outcome_not_sendable`` error for that frame.

Every outcome gets a message id of its own, kept when it is retried: a consumer that sees the
same id twice (MQTT delivers at least once) is looking at one outcome, not two.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta
from classifier.predictions import FrameFailure, Prediction
from edge_module.hub import OutboundMessage
from edge_module.message_size import fits
from edge_module.outbox import Outgoing


def sendable(
    outcome: Prediction | FrameFailure, predictions_output: str, errors_output: str
) -> Outgoing:
    """The outcome as a message with its fallback, or the fallback alone if it cannot fit."""
    message_id = uuid.uuid4().hex
    fallback = Outgoing(
        errors_output, _not_sendable(outcome.meta, message_id), None, outcome.meta.frame_id
    )
    try:
        message = replace(outcome.to_message(), message_id=message_id)
    except (ValueError, TypeError, OverflowError) as e:  # e.g. a label that is not text
        return replace(fallback, message=_not_sendable(outcome.meta, message_id, repr(e)))
    if not fits(message):
        return fallback
    output = predictions_output if isinstance(outcome, Prediction) else errors_output
    return Outgoing(output, message, fallback, outcome.meta.frame_id)


def _not_sendable(meta: FrameMeta, message_id: str, detail: str = "") -> OutboundMessage:
    # Only the frame id and source survive: they are bounded, and they say which frame it was.
    short = FrameMeta(meta.frame_id, meta.source_id, meta.capture_time)
    reason = "the outcome for this frame exceeds edgeHub's message limits"
    if detail:
        reason = f"the outcome for this frame could not be encoded: {detail[:200]}"
    failure = FrameFailure(short, FrameError(FrameErrorCode.OUTCOME_NOT_SENDABLE, reason))
    return replace(failure.to_message(), message_id=message_id)
