"""How large a message is as edgeHub counts it, and whether it fits.

edgeHub refuses messages over 256 KiB between modules and upstream, and the limit cannot be
raised (Azure/iotedge issues 269, 1554). Properties travel URL-encoded in the MQTT topic.
"""

from __future__ import annotations

import urllib.parse

from edge_module.hub import OutboundMessage

EDGEHUB_MAX_MESSAGE_BYTES = 262_144
# The SDK measures a message with sys.getsizeof over every field, which adds interpreter
# overhead to the bytes themselves; this margin keeps its check from refusing what fits.
SDK_OVERHEAD_BYTES = 4_096
# Properties travel URL-encoded in the MQTT topic, whose length field is 16 bits.
MAX_TOPIC_PROPERTY_BYTES = 32_768


def message_size(message: OutboundMessage) -> tuple[int, int]:
    """(bytes counted against edgeHub's limit, bytes the properties take in the topic)."""
    pairs = [(k, v) for k, v in message.properties.items()]
    for key, value in (
        ("$.mid", message.message_id),
        ("$.cid", message.correlation_id),
        ("$.ct", message.content_type),
        ("$.ce", message.content_encoding),
    ):
        if value:
            pairs.append((key, value))
    topic = sum(
        len(urllib.parse.quote(k, safe="")) + len(urllib.parse.quote(v, safe="")) + 2
        for k, v in pairs
    )
    total = len(message.body) + sum(len(k.encode()) + len(v.encode()) for k, v in pairs)
    return total, topic


def fits(message: OutboundMessage, limit_bytes: int = EDGEHUB_MAX_MESSAGE_BYTES) -> bool:
    """Whether edgeHub (and the SDK's own check before it) will take ``message``."""
    total, topic = message_size(message)
    return total + SDK_OVERHEAD_BYTES <= limit_bytes and topic <= MAX_TOPIC_PROPERTY_BYTES
