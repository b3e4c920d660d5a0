"""A synthetic camera frame as the classifier's ``frames`` input receives it."""

from __future__ import annotations

from edge_module.hub import InboundMessage
from framesource.sources.synthetic import CameraFrame


def camera_message(frame: CameraFrame) -> InboundMessage:
    return InboundMessage(
        "frames",
        frame.jpeg,
        "image/jpeg",
        message_id=frame.message_id,
        properties=frame.properties,
    )
