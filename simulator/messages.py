"""Device-to-cloud and module-to-module messages, and their MQTT topic property bags.

One ``Message`` type is shared by the edgeHub glue (which parses it from a PUBLISH), the router
(which evaluates route conditions on it) and the upstream store (which keeps it). The bag
encoding mirrors azure-iot-device's ``mqtt_topic_iothub``: ``urlencode`` with ``quote`` (so a
space is ``%20``, ``$`` is ``%24``), system properties first in a fixed order, then custom
properties sorted by key.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from simulator.jsondoc import JsonValue

# Bag key -> Message field; the order is the one the SDK writes them in.
_SYSTEM_BAG_KEYS: dict[str, str] = {
    "$.mid": "message_id",
    "$.cid": "correlation_id",
    "$.uid": "user_id",
    "$.ct": "content_type",
    "$.ce": "content_encoding",
    "$.exp": "expiry_time_utc",
}
_OUTPUT_KEY = "$.on"
_SOURCE_DEVICE_KEY = "$.cdid"
_SOURCE_MODULE_KEY = "$.cmid"
# Bag keys the SDK sends that are neither routed on nor passed along.
_DROPPED_BAG_KEYS = frozenset({"$.ifid", "$.to", "iothub-ack"})
_JSON_ENCODINGS = frozenset({"utf-8", "utf-16", "utf-32"})


@dataclass(frozen=True)
class Message:
    """A message as edgeHub holds it. ``properties`` are the sender's custom properties."""

    body: bytes
    properties: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    correlation_id: str | None = None
    user_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    expiry_time_utc: str | None = None
    # Set by the hub from the sender's authenticated connection, never taken from the sender.
    connection_device_id: str | None = None
    connection_module_id: str | None = None
    output_name: str | None = None

    def system_properties(self) -> dict[str, str]:
        """System properties under their query-language names (``$contentType`` minus ``$``)."""
        pairs = {
            "messageId": self.message_id,
            "correlationId": self.correlation_id,
            "userId": self.user_id,
            "contentType": self.content_type,
            "contentEncoding": self.content_encoding,
            "expiryTimeUtc": self.expiry_time_utc,
            "connectionDeviceId": self.connection_device_id,
            "connectionModuleId": self.connection_module_id,
            "outputName": self.output_name,
        }
        return {k: v for k, v in pairs.items() if v is not None}

    def json_body(self) -> tuple[bool, JsonValue]:
        """``(True, value)`` when IoT Hub would let a query see ``$body``, else ``(False, None)``.

        IoT Hub only looks inside bodies declared as ``application/json`` with a UTF
        ``contentEncoding``; anything else, or a body that does not parse, is opaque.
        """
        content_type = (self.content_type or "").split(";", 1)[0].strip().lower()
        encoding = (self.content_encoding or "").strip().lower()
        if content_type != "application/json" or encoding not in _JSON_ENCODINGS:
            return False, None
        try:
            return True, json.loads(self.body.decode(encoding))
        except (UnicodeDecodeError, ValueError):
            return False, None


@dataclass(frozen=True)
class EventTopic:
    """What the topic of a device-to-cloud PUBLISH says about its sender."""

    device_id: str
    module_id: str | None
    bag: str


def parse_event_topic(topic: str) -> EventTopic | None:
    """Split ``devices/{d}[/modules/{m}]/messages/events/{bag}``; None for other topics."""
    parts = topic.split("/", 6)
    if len(parts) >= 4 and parts[0] == "devices" and parts[2:4] == ["messages", "events"]:
        return EventTopic(parts[1], None, "/".join(parts[4:]))
    if (
        len(parts) >= 6
        and parts[0] == "devices"
        and parts[2] == "modules"
        and parts[4:6] == ["messages", "events"]
    ):
        return EventTopic(parts[1], parts[3], "/".join(parts[6:]))
    return None


def message_from_bag(body: bytes, bag: str, *, device_id: str, module_id: str | None) -> Message:
    """Build the message a client published; identity comes from the connection."""
    system: dict[str, str] = {}
    custom: dict[str, str] = {}
    output: str | None = None
    for key, value in _parse_bag(bag):
        if key == _OUTPUT_KEY:
            output = value
        elif key in _SYSTEM_BAG_KEYS:
            system[_SYSTEM_BAG_KEYS[key]] = value
        elif key in _DROPPED_BAG_KEYS or key in (_SOURCE_DEVICE_KEY, _SOURCE_MODULE_KEY):
            # A client may not claim another sender; edgeHub sets these itself.
            continue
        else:
            custom[key] = value
    return Message(
        body=body,
        properties=custom,
        connection_device_id=device_id,
        connection_module_id=module_id,
        output_name=output or None,
        **system,
    )


def _parse_bag(bag: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for entry in bag.split("&"):
        if not entry:
            continue
        key, _, value = entry.partition("=")
        pairs.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
    return pairs


def input_topic(device_id: str, module_id: str, input_name: str, message: Message) -> str:
    """The topic edgeHub publishes a routed message on to a module's input."""
    system: list[tuple[str, str]] = []
    for key, attr in _SYSTEM_BAG_KEYS.items():
        value = getattr(message, attr)
        if value is not None:
            system.append((key, value))
    if message.connection_device_id is not None:
        system.append((_SOURCE_DEVICE_KEY, message.connection_device_id))
    if message.connection_module_id is not None:
        system.append((_SOURCE_MODULE_KEY, message.connection_module_id))
    custom = sorted(message.properties.items())
    bag = urllib.parse.urlencode(system + custom, quote_via=urllib.parse.quote)
    return f"devices/{device_id}/modules/{module_id}/inputs/{input_name}/{bag}"


def with_source(
    message: Message, device_id: str, module_id: str | None, output: str | None
) -> Message:
    """The same message stamped with the connection it arrived on."""
    return replace(
        message,
        connection_device_id=device_id,
        connection_module_id=module_id,
        output_name=output,
    )
