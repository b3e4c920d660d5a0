"""Request bodies and error responses in IoT Hub's shapes, shared by every route module."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from aiohttp import web

from simulator.errors import HubError
from simulator.jsondoc import JsonObject, JsonValue, is_object

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def error_response(status: int, code: str, message: str) -> web.Response:
    """IoT Hub's error body; the tracking id lets a log line be matched to a response."""
    tracking = uuid.uuid4().hex
    stamp = dt.datetime.now(dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
    body = {
        "Message": f"ErrorCode:{code};{message}",
        "ExceptionMessage": f"Tracking ID:{tracking}-TimeStamp:{stamp}",
    }
    return web.json_response(body, status=status, headers={"iothub-errorcode": code})


def _reject_constant(name: str) -> JsonValue:
    raise ValueError(f"{name} is not JSON")


async def json_object(request: web.Request) -> JsonObject:
    """The request body as a JSON object (an empty body reads as ``{}``), or a 400."""
    text = await request.text()
    try:
        value = json.loads(text, parse_constant=_reject_constant) if text.strip() else {}
    except ValueError as e:
        raise HubError(400, "ArgumentInvalid", f"the body is not valid JSON: {e}") from e
    if not is_object(value):
        raise HubError(400, "ArgumentInvalid", "the body must be a JSON object")
    return value


def optional_string(body: JsonObject, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HubError(400, "ArgumentInvalid", f"{key} must be a string")
    return value


def seconds(body: JsonObject, key: str, default: int) -> float:
    value = body.get(key)
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HubError(400, "ArgumentInvalid", f"{key} must be a number")
    return float(value)


def continuation(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise HubError(400, "ArgumentInvalid", "invalid continuation token")
    return int(token)


def page_size(header: str | None) -> int:
    if not header:
        return DEFAULT_PAGE
    if not header.isdigit() or int(header) == 0:
        raise HubError(400, "ArgumentInvalid", "x-ms-max-item-count must be a positive integer")
    return min(int(header), MAX_PAGE)
