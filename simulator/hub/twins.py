"""Module twins: tags, desired and reported properties with IoT Hub's versions and limits.

Desired and reported each carry their own ``$version`` (starting at 1, +1 per change); the twin
as a whole carries ``version`` and an ``etag`` derived from it, used for ``If-Match``. Every
change is validated completely before anything is stored, so a refused patch changes nothing.

Desired changes are announced to listeners as the merge patch the module must apply, plus the
new ``"$version"``: exactly the body edgeHub publishes on
``$iothub/twin/PATCH/properties/desired/?$version=N``. A replace (PUT or a deployment) is
announced as the diff from the old document, with nulls for removed keys, so a module that
merges patches ends up with the same document the hub holds.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.errors import HubError
from simulator.jsondoc import JsonObject, JsonValue, is_object, merge_diff, merge_patch

log = logging.getLogger(__name__)

TAGS_MAX_BYTES = 8 * 1024
SECTION_MAX_BYTES = 32 * 1024
MAX_DEPTH = 10
MAX_KEY_BYTES = 1024
MAX_STRING_BYTES = 4 * 1024
# Read-only members IoT Hub returns inside a section; clients echo them back on PUT/PATCH.
_SECTION_SYSTEM_KEYS = ("$metadata", "$version")

DesiredListener = Callable[[str, str, JsonObject], None]
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_timestamp(when: dt.datetime) -> str:
    """IoT Hub's timestamp shape: seven fractional digits and a Z."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class _Section:
    doc: JsonObject = field(default_factory=dict)
    version: int = 1
    metadata: JsonObject = field(default_factory=dict)


@dataclass
class _Twin:
    tags: JsonObject = field(default_factory=dict)
    desired: _Section = field(default_factory=_Section)
    reported: _Section = field(default_factory=_Section)
    version: int = 1

    @property
    def etag(self) -> str:
        # IoT Hub's etags are base64 of an 8-byte counter ("AAAAAAAAAAE="); so are these.
        return base64.b64encode(self.version.to_bytes(8, "big")).decode("ascii")


class TwinStore:
    """All module twins of the simulated hub, keyed by (device id, module id).

    Twins are created on first use: a module's twin exists as soon as anything (a deployment,
    the module itself) refers to it. Whether the module *identity* exists is the registry's
    business, checked by the service API.
    """

    def __init__(self, clock: Clock = _utc_now) -> None:
        self._clock = clock
        self._twins: dict[tuple[str, str], _Twin] = {}
        self._listeners: list[DesiredListener] = []

    # -- lifecycle and listeners -----------------------------------------------------------

    def exists(self, device_id: str, module_id: str) -> bool:
        return (device_id, module_id) in self._twins

    def ensure(self, device_id: str, module_id: str) -> None:
        self._twin(device_id, module_id)

    def remove(self, device_id: str, module_id: str) -> None:
        self._twins.pop((device_id, module_id), None)

    def keys(self) -> list[tuple[str, str]]:
        return list(self._twins)

    def add_desired_listener(self, listener: DesiredListener) -> Callable[[], None]:
        """``listener(device_id, module_id, patch_with_version)``; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- views -----------------------------------------------------------------------------

    def etag(self, device_id: str, module_id: str) -> str:
        return self._twin(device_id, module_id).etag

    def desired_version(self, device_id: str, module_id: str) -> int:
        return self._twin(device_id, module_id).desired.version

    def get_for_module(self, device_id: str, module_id: str) -> JsonObject:
        """The MQTT twin GET body: no ``properties`` wrapper and no ``$metadata``."""
        twin = self._twin(device_id, module_id)
        return {
            "desired": {**copy.deepcopy(twin.desired.doc), "$version": twin.desired.version},
            "reported": {**copy.deepcopy(twin.reported.doc), "$version": twin.reported.version},
        }

    def get_for_service(
        self, device_id: str, module_id: str, *, connection_state: str = "Disconnected"
    ) -> JsonObject:
        """The twin as the service REST API returns it (and the Twin model deserialises)."""
        twin = self._twin(device_id, module_id)
        return {
            "deviceId": device_id,
            "moduleId": module_id,
            "etag": twin.etag,
            "deviceEtag": twin.etag,
            "status": "enabled",
            "connectionState": connection_state,
            "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas",
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "modelId": "",
            "version": twin.version,
            "tags": copy.deepcopy(twin.tags),
            "properties": {
                "desired": _section_for_service(twin.desired),
                "reported": _section_for_service(twin.reported),
            },
        }

    # -- changes ---------------------------------------------------------------------------

    def patch_reported(self, device_id: str, module_id: str, patch: object) -> int:
        """Merge a module's reported patch; returns the new reported ``$version``."""
        patch_obj = _require_object(patch, "reported properties patch")
        _validate(patch_obj, "reported")
        twin = self._twin(device_id, module_id)
        new_doc = merge_patch(twin.reported.doc, patch_obj)
        _check_size(new_doc, SECTION_MAX_BYTES, "reported properties")
        _commit(twin.reported, new_doc, patch_obj, self._now(), with_version=False)
        twin.version += 1
        return twin.reported.version

    def update(
        self,
        device_id: str,
        module_id: str,
        *,
        desired_patch: object = None,
        tags_patch: object = None,
        if_match: str | None = None,
    ) -> None:
        """The service PATCH: merge tags and desired properties."""
        twin = self._twin(device_id, module_id)
        _check_etag(twin, if_match)
        desired = _strip_system(_require_object(_or_empty(desired_patch), "desired properties"))
        tags = _require_object(_or_empty(tags_patch), "tags")
        _validate(desired, "desired")
        _validate(tags, "tags")
        new_desired = merge_patch(twin.desired.doc, desired)
        new_tags = merge_patch(twin.tags, tags)
        _check_size(new_desired, SECTION_MAX_BYTES, "desired properties")
        _check_size(new_tags, TAGS_MAX_BYTES, "tags")
        self._apply(device_id, module_id, twin, new_desired, desired, new_tags)

    def replace(
        self,
        device_id: str,
        module_id: str,
        *,
        desired: object,
        tags: object = None,
        if_match: str | None = None,
    ) -> None:
        """The service PUT (and a deployment): desired, and tags unless None, are replaced."""
        twin = self._twin(device_id, module_id)
        _check_etag(twin, if_match)
        new_desired = copy.deepcopy(
            _strip_system(_require_object(_or_empty(desired), "desired properties"))
        )
        new_tags = twin.tags if tags is None else _require_object(tags, "tags")
        _validate(new_desired, "desired")
        _validate(new_tags, "tags")
        _check_size(new_desired, SECTION_MAX_BYTES, "desired properties")
        _check_size(new_tags, TAGS_MAX_BYTES, "tags")
        diff = merge_diff(twin.desired.doc, new_desired)
        self._apply(device_id, module_id, twin, new_desired, diff, copy.deepcopy(new_tags))

    def apply_modules_content(self, device_id: str, modules_content: object) -> list[str]:
        """Set the desired properties of every module a deployment names; returns their ids.

        Accepts the manifest form ``{"mod": {"properties.desired": {...}}}`` and the nested
        ``{"mod": {"properties": {"desired": {...}}}}``. All are validated before any is set.
        """
        content = _require_object(modules_content, "modulesContent")
        wanted: dict[str, JsonObject] = {}
        for module_id, entry in content.items():
            desired = _desired_of(module_id, entry)
            stripped = _strip_system(desired)
            _validate(stripped, f"{module_id} desired")
            _check_size(stripped, SECTION_MAX_BYTES, f"{module_id} desired properties")
            wanted[module_id] = stripped
        for module_id, desired in wanted.items():
            self.replace(device_id, module_id, desired=desired)
        return list(wanted)

    # -- internals -------------------------------------------------------------------------

    def _twin(self, device_id: str, module_id: str) -> _Twin:
        key = (device_id, module_id)
        twin = self._twins.get(key)
        if twin is None:
            stamp = iso_timestamp(self._clock())
            twin = _Twin()
            twin.desired.metadata = {"$lastUpdated": stamp, "$lastUpdatedVersion": 1}
            twin.reported.metadata = {"$lastUpdated": stamp}
            self._twins[key] = twin
        return twin

    def _now(self) -> str:
        return iso_timestamp(self._clock())

    def _apply(
        self,
        device_id: str,
        module_id: str,
        twin: _Twin,
        new_desired: JsonObject,
        desired_patch: JsonObject,
        new_tags: JsonObject,
    ) -> None:
        changed_tags = new_tags != twin.tags
        twin.tags = new_tags
        if desired_patch:
            _commit(twin.desired, new_desired, desired_patch, self._now(), with_version=True)
        if desired_patch or changed_tags:
            twin.version += 1
        if desired_patch:
            body: JsonObject = {**copy.deepcopy(desired_patch), "$version": twin.desired.version}
            for listener in list(self._listeners):
                try:
                    listener(device_id, module_id, copy.deepcopy(body))
                except Exception:
                    # A broken subscriber must not undo a change the hub has already accepted.
                    log.exception(
                        "desired-property listener failed for %s/%s", device_id, module_id
                    )


def _commit(
    section: _Section, new_doc: JsonObject, patch: JsonObject, when: str, *, with_version: bool
) -> None:
    section.doc = new_doc
    section.version += 1
    _stamp(section.metadata, patch, when, section.version if with_version else None)


def _stamp(meta: JsonObject, patch: JsonObject, when: str, version: int | None) -> None:
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
            _stamp(child, value, when, version)
        else:
            child["$lastUpdated"] = when
            if version is not None:
                child["$lastUpdatedVersion"] = version


def _section_for_service(section: _Section) -> JsonObject:
    return {
        **copy.deepcopy(section.doc),
        "$metadata": copy.deepcopy(section.metadata),
        "$version": section.version,
    }


def _desired_of(module_id: str, entry: JsonValue) -> JsonObject:
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


def _require_object(value: object, what: str) -> JsonObject:
    if not is_object(value):
        raise HubError(400, "ArgumentInvalid", f"{what} must be a JSON object")
    return value


def _or_empty(value: object) -> object:
    return {} if value is None else value


def _strip_system(doc: JsonObject) -> JsonObject:
    return {k: v for k, v in doc.items() if k not in _SECTION_SYSTEM_KEYS}


def _check_etag(twin: _Twin, if_match: str | None) -> None:
    if if_match is None:
        return
    # azure-iot-hub quotes whatever it is given, so "any" arrives as '"*"' as well as '*'.
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted != "*" and wanted != twin.etag:
        raise HubError(412, "PreconditionFailed", f"etag {wanted!r} does not match {twin.etag!r}")


def _validate(doc: JsonObject, where: str, level: int = 1) -> None:
    if level > MAX_DEPTH:
        raise HubError(400, "ArgumentInvalid", f"{where}: nesting deeper than {MAX_DEPTH} levels")
    for key, value in doc.items():
        _check_key(key, where)
        if is_object(value):
            _validate(value, f"{where}.{key}", level + 1)
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


def _check_size(doc: JsonObject, limit: int, what: str) -> None:
    size = twin_size(doc)
    if size > limit:
        raise HubError(
            400, "ArgumentInvalid", f"{what} would be {size} bytes; the limit is {limit}"
        )
