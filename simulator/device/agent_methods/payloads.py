"""The payloads of edgeAgent's direct methods, read as edgeAgent reads them.

Field names, defaults and errors follow edgeAgent (Azure/iotedge, edge-agent's
``Requests/*Request.cs`` and ``Logs/LogRequestItem.cs``, ``ModuleLogFilter.cs``):

- a payload that does not fit the request's shape (not an object, a missing ``schemaVersion``,
  ``items`` or ``id``, a wrong type, an unknown ``encoding``) is a ``BadRequestError`` (400,
  "Error parsing command payload because of error - ...");
- a ``schemaVersion`` that is not a version, or whose major version is not 1, is a
  ``RequestFailedError`` (500), as edgeAgent's ``InvalidSchemaVersionException`` is;
- ``items`` may be one object instead of a list; unknown fields are ignored; ``encoding``
  (``none``/``gzip``) and ``contentType`` (``text``/``json``) are case-insensitive and default
  to ``none`` and ``text``; ``since`` and ``until`` are kept as text and read when the logs are
  (an unreadable one fails the request then, as edgelet's ``invalid parameter: since`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from simulator.errors import BadRequestError, RequestFailedError
from simulator.jsondoc import JsonObject, JsonValue, is_object

__all__ = [
    "ContentEncoding",
    "ContentType",
    "LogFilter",
    "LogItem",
    "LogsRequest",
    "RestartRequest",
    "TaskStatusRequest",
    "logs_request",
    "restart_request",
    "task_status_request",
]

_E = TypeVar("_E", bound=StrEnum)
_EXPECTED_MAJOR = 1
_VERSION = re.compile(r"^\d+(\.\d+){1,3}$")  # .NET's Version.TryParse: 2 to 4 parts


class ContentEncoding(StrEnum):
    NONE = "none"
    GZIP = "gzip"


class ContentType(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class LogFilter:
    tail: int | None = None
    since: str | None = None
    until: str | None = None
    loglevel: int | None = None
    regex: re.Pattern[str] | None = None


@dataclass(frozen=True)
class LogItem:
    """``id`` is a case-insensitive regular expression searched in module names."""

    id: re.Pattern[str]
    filter: LogFilter


@dataclass(frozen=True)
class LogsRequest:
    """``GetModuleLogs``, or ``UploadModuleLogs`` when ``sas_url`` is set."""

    items: tuple[LogItem, ...]
    encoding: ContentEncoding
    content_type: ContentType
    sas_url: str | None


@dataclass(frozen=True)
class RestartRequest:
    id: str


@dataclass(frozen=True)
class TaskStatusRequest:
    correlation_id: str


def restart_request(payload: JsonValue) -> RestartRequest:
    body = _object(payload)
    _check_schema(body, "restart module request schema")
    return RestartRequest(_text(body, "id"))


def task_status_request(payload: JsonValue) -> TaskStatusRequest:
    body = _object(payload)
    _check_schema(body, "logs upload request schema")
    return TaskStatusRequest(_text(body, "correlationId"))


def logs_request(payload: JsonValue, *, upload: bool) -> LogsRequest:
    body = _object(payload)
    version = _text(body, "schemaVersion")
    items_value = body.get("items")
    if items_value is None:
        raise _parse_error("Value cannot be null. (Parameter 'items')")
    raw_items = items_value if isinstance(items_value, list) else [items_value]
    items = tuple(_item(raw) for raw in raw_items)
    encoding = _choice(body, "encoding", ContentEncoding, ContentEncoding.NONE)
    content_type = _choice(body, "contentType", ContentType, ContentType.TEXT)
    sas_url = None
    if upload:
        value = body.get("sasUrl")
        if not isinstance(value, str):
            raise _parse_error("Value cannot be null. (Parameter 'sasUrl')")
        sas_url = value
    _check_version(version, "logs upload request schema")
    return LogsRequest(items, encoding, content_type, sas_url)


def _item(raw: JsonValue) -> LogItem:
    if not is_object(raw):
        raise _parse_error("each of items must be an object with an id")
    module_pattern = _text(raw, "id")
    try:
        pattern = re.compile(module_pattern, re.IGNORECASE)
    except re.error as e:
        # edgeAgent compiles the id while matching modules: an ArgumentException, 400.
        raise BadRequestError(f"Invalid pattern '{module_pattern}': {e}") from e
    raw_filter = raw.get("filter")
    if raw_filter is None:
        return LogItem(pattern, LogFilter())
    if not is_object(raw_filter):
        raise _parse_error("filter must be an object")
    return LogItem(pattern, _filter(raw_filter))


def _filter(raw: JsonObject) -> LogFilter:
    tail = _optional_int(raw, "tail")
    if tail is not None and tail < 0:
        raise _parse_error("tail must be 0 or more")
    regex_text = raw.get("regex")
    regex = None
    if regex_text is not None:
        if not isinstance(regex_text, str):
            raise _parse_error("regex must be a string")
        try:
            regex = re.compile(regex_text)
        except re.error as e:
            raise _parse_error(f"Invalid pattern '{regex_text}': {e}") from e
    return LogFilter(
        tail=tail,
        since=_optional_time(raw, "since"),
        until=_optional_time(raw, "until"),
        loglevel=_optional_int(raw, "loglevel"),
        regex=regex,
    )


def _object(payload: JsonValue) -> JsonObject:
    if payload is None:
        raise BadRequestError("Request payload not found")
    if not is_object(payload):
        raise _parse_error(f"the payload must be a JSON object, not {type(payload).__name__}")
    return payload


def _text(body: JsonObject, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _parse_error(f"The value '{name}' cannot be null or whitespace.")
    return value


def _optional_int(body: JsonObject, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    # Json.NET converts numeric strings as well; a bool or a fraction is refused.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _parse_error(f"{name} must be an integer, not {value!r}")


def _optional_time(body: JsonObject, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _parse_error(f"{name} must be a string or a number, not {value!r}")
    return str(value)


def _choice(body: JsonObject, name: str, kind: type[_E], default: _E) -> _E:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, str):
        for member in kind:
            if member.value == value.lower():
                return member
    allowed = "/".join(m.value for m in kind)
    raise _parse_error(f"{name} must be one of {allowed}, not {value!r}")


def _check_schema(body: JsonObject, context: str) -> None:
    _check_version(_text(body, "schemaVersion"), context)


def _check_version(version: str, context: str) -> None:
    if not _VERSION.match(version.strip()):
        raise RequestFailedError(f"Invalid {context} version {version}")
    if int(version.strip().split(".")[0]) != _EXPECTED_MAJOR:
        raise RequestFailedError(
            f"The {context} version {version} is not compatible with the expected version 1.0"
        )


def _parse_error(reason: str) -> BadRequestError:
    return BadRequestError(f"Error parsing command payload because of error - {reason}")
