"""The small interface between a module and edgeHub.

``sdk_hub.SdkHub`` implements it over azure-iot-device (the only file that imports the SDK);
``local_hub.LocalHub`` implements it in process for the classifier's scoring command,
benchmarks and unit tests. End-to-end tests drive the real SDK through the device simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class InboundMessage:
    input_name: str
    body: bytes
    content_type: str | None = None
    content_encoding: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    body: bytes
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    message_id: str | None = None
    correlation_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


MessageHandler = Callable[[InboundMessage], Coroutine[Any, Any, None]]
DesiredHandler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class MethodResult:
    status: int
    payload: Any


MethodHandler = Callable[[str, Any], Coroutine[Any, Any, MethodResult]]


class Hub(Protocol):
    """What the module needs from edgeHub. Handlers are awaited on the module's event loop."""

    @property
    def connected(self) -> bool:
        """Whether the transport believes it is connected (what the wedge watchdog checks)."""
        ...

    async def connect(self) -> None: ...

    async def renew(self) -> None:
        """Starts over on a new connection, when the current one is wedged (see watchdog)."""
        ...

    async def send(self, output: str, message: OutboundMessage) -> None: ...

    def on_message(self, handler: MessageHandler) -> None: ...

    def on_desired_properties(self, handler: DesiredHandler) -> None: ...

    def on_method(self, handler: MethodHandler) -> None: ...

    async def get_desired_properties(self) -> dict[str, Any]: ...

    async def report(self, patch: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


def merge_patch(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A twin patch applied to a document (JSON merge patch: null deletes a key)."""
    merged = dict(doc)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged
