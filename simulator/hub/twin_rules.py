"""IoT Hub's rules for twin documents: names, depth, sizes, etags and ``$metadata`` stamps.

Pure functions over JSON, shared by device and module twins. Every check runs before a store
changes anything, so a refused patch leaves the twin as it was.
"""

from __future__ import annotations

import datetime as dt

from simulator.errors import HubError
from simulator.jsondoc import JsonObject, JsonValue, is_object

TAGS_MAX_BYTES = 8 * 1024
SECTION_MAX_BYTES = 32 * 1024
MAX_DEPTH = 10
MAX_KEY_BYTES = 1024
MAX_STRING_BYTES = 4 * 1024
# Read-only members IoT Hub returns inside a section; clients echo them back on PUT/PATCH.
SECTION_SYSTEM_KEYS = ("$metadata", "$version")


def iso_timestamp(when: dt.datetime) -> str:
    """IoT Hub's timestamp shape: seven fractional digits and a Z."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def require_object(value: object, what: str) -> JsonObject:
    if not is_object(value):
        raise HubError(400, "ArgumentInvalid", f"{what} must be a JSON object")
    return value


def or_empty(value: object) -> object:
    return {} if value is None else value


def strip_system(doc: JsonObject) -> JsonObject:
    return {k: v for k, v in doc.items() if k not in SECTION_SYSTEM_KEYS}


def check_etag(current: str, if_match: str | None) -> None:
    if if_match is None:
        return
    # azure-iot-hub quotes whatever it is given, so "any" arrives as '"*"' as well as '*'.
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted != "*" and wanted != current:
        raise HubError(412, "PreconditionFailed", f"etag {wanted!r} does not match {current!r}")


def validate(doc: JsonObject, where: str, level: int = 1) -> None:
    if level > MAX_DEPTH:
        raise HubError(400, "ArgumentInvalid", f"{where}: nesting deeper than {MAX_DEPTH} levels")
    for key, value in doc.items():
        _check_key(key, where)
        if is_object(value):
            validate(value, f"{where}.{key}", level + 1)
        elif isinstance(value, str) and len(value.encode("utf-8")) > MAX_STRING_BYTES:
            raise HubError(
                400,
                "ArgumentInvalid",
                f"{where}.{key}: string longer than {MAX_STRING_BYTES} bytes",
            )
        elif isinstance(value, float) and value != value:  # NaN is not JSON
            raise HubError(400, "ArgumentInvalid", f"{where}.{key}: not a JSON number")


def _check_key(key: str, where: str) -> None:
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise HubError(
            400, "ArgumentInvalid", f"{where}: property names must be 1 to {MAX_KEY_BYTES} bytes"
        )
    for ch in key:
        if ch in ".$ " or _is_control(ch):
            raise HubError(
                400, "ArgumentInvalid", f"{where}: property name {key!r} contains {ch!r}"
            )


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def twin_size(value: JsonValue) -> int:
    """IoT Hub's size measure: key bytes plus value size (strings by UTF-8 bytes without
    control characters, numbers 8, booleans 4), summed through nested objects and arrays."""
    if is_object(value):
        return sum(len(k.encode("utf-8")) + twin_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(twin_size(v) for v in value)
    if isinstance(value, bool):
        return 4
    if isinstance(value, int | float):
        return 8
    if isinstance(value, str):
        return len("".join(c for c in value if not _is_control(c)).encode("utf-8"))
    return 0


def check_size(doc: JsonObject, limit: int, what: str) -> None:
    size = twin_size(doc)
    if size > limit:
        raise HubError(
            400, "ArgumentInvalid", f"{what} would be {size} bytes; the limit is {limit}"
        )


def stamp(meta: JsonObject, patch: JsonObject, when: str, version: int | None) -> None:
    """Mirror a merge patch onto the ``$metadata`` tree, stamping every node it touched."""
    meta["$lastUpdated"] = when
    if version is not None:
        meta["$lastUpdatedVersion"] = version
    for key, value in patch.items():
        if value is None:
            meta.pop(key, None)
            continue
        existing = meta.get(key)
        child: JsonObject = existing if is_object(existing) and is_object(value) else {}
        meta[key] = child
        if is_object(value):
            stamp(child, value, when, version)
        else:
            child["$lastUpdated"] = when
            if version is not None:
                child["$lastUpdatedVersion"] = version


def desired_of(module_id: str, entry: JsonValue) -> JsonObject:
    """A deployment entry's desired properties: ``{"properties.desired": {...}}`` (the
    manifest form) or ``{"properties": {"desired": {...}}}``."""
    if is_object(entry):
        flat = entry.get("properties.desired")
        if is_object(flat):
            return flat
        nested = entry.get("properties")
        if is_object(nested) and is_object(nested.get("desired")):
            desired = nested["desired"]
            assert is_object(desired)
            return desired
    raise HubError(
        400, "ArgumentInvalid", f"modulesContent.{module_id} has no properties.desired object"
    )
