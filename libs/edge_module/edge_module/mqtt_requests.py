"""The MQTT hub's two kinds of request from outside: the retained desired document, and
method calls as MQTT v5 request/response (docs/mqtt.md). Pure: no connection here."""

from __future__ import annotations

import json
import logging
from typing import Any

from edge_module.hub import MethodHandler, MethodResult

log = logging.getLogger(__name__)


class DesiredDocument:
    """The latest desired document, with a ``$version`` that orders it as the twin's does."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"$version": 0}

    def take(self, payload: bytes, topic: str) -> bool:
        """Takes a retained document; True when it differs from the one held."""
        try:
            doc = json.loads(payload) if payload else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            log.error("desired document on %s is not JSON, ignored: %s", topic, e)
            return False
        if not isinstance(doc, dict):
            log.error("desired document on %s is not a JSON object, ignored", topic)
            return False
        version = doc.get("$version")
        if not isinstance(version, int) or isinstance(version, bool):
            # Written by hand without a version: numbered on arrival, so it still orders.
            same = {k: v for k, v in self.doc.items() if k != "$version"} == doc
            version = int(self.doc["$version"]) + (0 if same else 1)
        changed = version != self.doc.get("$version")
        self.doc = doc | {"$version": version}
        return changed


async def method_response(
    handler: MethodHandler | None, name: str, payload: bytes
) -> tuple[int, bytes]:
    """The status and JSON body answering a call of ``name`` with ``payload``."""
    try:
        request = json.loads(payload) if payload else None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        result = MethodResult(400, {"error": f"the request is not JSON: {e}"})
    else:
        result = await _call(handler, name, request)
    return result.status, json.dumps(result.payload).encode()


async def _call(handler: MethodHandler | None, name: str, request: Any) -> MethodResult:
    if handler is None:
        return MethodResult(501, {"error": f"method {name!r} is not implemented"})
    try:
        return await handler(name, request)
    except Exception as e:
        log.exception("method %s failed", name)
        return MethodResult(500, {"error": str(e)})
