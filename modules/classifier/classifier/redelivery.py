"""Recognises a frame message that edgeHub delivers a second time, so it gets one outcome.

Why: MQTT QoS 1 delivers at least once. The SDK acknowledges a message as it reads it, but an
acknowledgement lost when the connection drops (an edgeHub restart, a network cut) makes
edgeHub send the message again after the reconnect, and without this the frame would be
scored twice. A redelivery is the same message: same id, same properties, same bytes.

Only messages with an id are compared: without one, two identical frames from a camera that
sees a still scene cannot be told from a redelivery. The memory of recent messages is
bounded (``capacity`` keys, oldest forgotten first); a redelivery comes within seconds.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from edge_module.hub import InboundMessage

DEFAULT_CAPACITY = 4_096


class RecentMessages:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def is_repeat(self, message: InboundMessage) -> bool:
        """True if this exact message was seen recently; records it otherwise."""
        if not message.message_id:
            return False
        key = _key(message)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return False


def _key(message: InboundMessage) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for part in (
        message.input_name,
        message.message_id or "",
        message.correlation_id or "",
        message.content_type or "",
        repr(sorted(message.properties.items())),
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    digest.update(message.body)
    return digest.digest()
