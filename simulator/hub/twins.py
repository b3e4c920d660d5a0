"""Device and module twins: tags, desired and reported properties with IoT Hub's versions.

A twin is keyed by (device id, module id); a device's own twin has the module id ``""``
(``DEVICE_TWIN``). Desired and reported each carry their own ``$version`` (starting at 1, +1
per change); the twin as a whole carries ``version`` and an ``etag`` derived from it, used for
``If-Match``. Every change is validated completely before anything is stored, so a refused
patch changes nothing, and every change is written through to the hub database.

Desired changes are announced to listeners as the merge patch the module must apply, plus the
new ``"$version"``: exactly the body edgeHub publishes on
``$iothub/twin/PATCH/properties/desired/?$version=N``. A replace (PUT or a deployment) is
announced as the diff from the old document, with nulls for removed keys, so a module that
merges patches ends up with the same document the hub holds. Tag changes are announced too:
automatic deployments target devices by their tags.

``$edgeAgent`` twins also carry ``configurations``: which deployments IoT Hub applied to the
device (``Applied``) or found targeting it without applying them (``Targeted``).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.hub import twin_rules as rules
from simulator.hub.database import TWINS, HubDatabase
from simulator.jsondoc import JsonObject, JsonValue, is_object, merge_diff, merge_patch

log = logging.getLogger(__name__)

DEVICE_TWIN = ""
SECTION_MAX_BYTES = rules.SECTION_MAX_BYTES

DesiredListener = Callable[[str, str, JsonObject], None]
TagsListener = Callable[[str, str], None]
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Section:
    doc: JsonObject = field(default_factory=dict)
    version: int = 1
    metadata: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {"doc": self.doc, "version": self.version, "metadata": self.metadata}

    @classmethod
    def from_json(cls, data: JsonValue) -> _Section:
        section = rules.require_object(data, "stored twin section")
        doc, version, metadata = section["doc"], section["version"], section["metadata"]
        assert is_object(doc)
        assert isinstance(version, int)
        assert is_object(metadata)
        return cls(doc, version, metadata)

    def for_service(self) -> JsonObject:
        return {
            **copy.deepcopy(self.doc),
            "$metadata": copy.deepcopy(self.metadata),
            "$version": self.version,
        }


@dataclass
class _Twin:
    tags: JsonObject = field(default_factory=dict)
    desired: _Section = field(default_factory=_Section)
    reported: _Section = field(default_factory=_Section)
    version: int = 1
    configurations: JsonObject = field(default_factory=dict)

    @property
    def etag(self) -> str:
        # IoT Hub's etags are base64 of an 8-byte counter ("AAAAAAAAAAE="); so are these.
        return base64.b64encode(self.version.to_bytes(8, "big")).decode("ascii")

    def to_json(self) -> JsonObject:
        return {
            "tags": self.tags,
            "desired": self.desired.to_json(),
            "reported": self.reported.to_json(),
            "version": self.version,
            "configurations": self.configurations,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> _Twin:
        tags, version, configurations = data["tags"], data["version"], data["configurations"]
        assert is_object(tags)
        assert isinstance(version, int)
        assert is_object(configurations)
        desired, reported = (
            _Section.from_json(data["desired"]),
            _Section.from_json(data["reported"]),
        )
        return cls(tags, desired, reported, version, configurations)


class TwinStore:
    """Every twin of the simulated hub. ``__init__`` only assigns; use :meth:`load`.

    Twins are created on first use: a module's twin exists as soon as anything (a deployment,
    the module itself) refers to it. Whether the *identity* exists is the registry's business.
    """

    def __init__(self, database: HubDatabase, twins: dict[tuple[str, str], _Twin], clock: Clock):
        self._db = database
        self._twins = twins
        self._clock = clock
        self._desired_listeners: list[DesiredListener] = []
        self._tags_listeners: list[TagsListener] = []

    @classmethod
    def load(cls, database: HubDatabase, clock: Clock = _utc_now) -> TwinStore:
        twins = {(d, m): _Twin.from_json(doc) for (d, m), doc in database.load(TWINS).items()}
        return cls(database, twins, clock)

    @classmethod
    def in_memory(cls, clock: Clock = _utc_now) -> TwinStore:
        return cls.load(HubDatabase.in_memory(), clock)

    # -- lifecycle and listeners -----------------------------------------------------------

    def exists(self, device_id: str, module_id: str) -> bool:
        return (device_id, module_id) in self._twins

    def ensure(self, device_id: str, module_id: str) -> None:
        self._twin(device_id, module_id)

    def remove(self, device_id: str, module_id: str) -> None:
        if self._twins.pop((device_id, module_id), None) is not None:
            self._db.delete(TWINS, (device_id, module_id))

    def remove_device(self, device_id: str) -> None:
        """The device's twin and every module twin of the device."""
        for key in [k for k in self._twins if k[0] == device_id]:
            del self._twins[key]
        self._db.delete_where(TWINS, device_id)

    def keys(self) -> list[tuple[str, str]]:
        return list(self._twins)

    def add_desired_listener(self, listener: DesiredListener) -> Callable[[], None]:
        """``listener(device_id, module_id, patch_with_version)``; returns an unsubscribe."""
        self._desired_listeners.append(listener)
        return lambda: self._desired_listeners.remove(listener)

    def add_tags_listener(self, listener: TagsListener) -> Callable[[], None]:
        """``listener(device_id, module_id)`` after a change of that twin's tags."""
        self._tags_listeners.append(listener)
        return lambda: self._tags_listeners.remove(listener)

    # -- views -----------------------------------------------------------------------------

    def etag(self, device_id: str, module_id: str) -> str:
        return self._twin(device_id, module_id).etag

    def desired_version(self, device_id: str, module_id: str) -> int:
        return self._twin(device_id, module_id).desired.version

    def desired(self, device_id: str, module_id: str) -> JsonObject:
        """The desired document without ``$version`` or ``$metadata``."""
        return copy.deepcopy(self._twin(device_id, module_id).desired.doc)

    def reported(self, device_id: str, module_id: str) -> JsonObject:
        return copy.deepcopy(self._twin(device_id, module_id).reported.doc)

    def tags(self, device_id: str, module_id: str = DEVICE_TWIN) -> JsonObject:
        return copy.deepcopy(self._twin(device_id, module_id).tags)

    def configurations(self, device_id: str, module_id: str) -> JsonObject:
        return copy.deepcopy(self._twin(device_id, module_id).configurations)

    def get_for_module(self, device_id: str, module_id: str) -> JsonObject:
        """The MQTT twin GET body: no ``properties`` wrapper and no ``$metadata``."""
        twin = self._twin(device_id, module_id)
        return {
            "desired": {**copy.deepcopy(twin.desired.doc), "$version": twin.desired.version},
            "reported": {**copy.deepcopy(twin.reported.doc), "$version": twin.reported.version},
        }

    def get_for_service(
        self, device_id: str, module_id: str, identity: JsonObject | None = None
    ) -> JsonObject:
        """The twin as the service REST API returns it (and the Twin model deserialises).

        ``identity`` holds what the registry and the devices know (status, connection state,
        capabilities ...); without it the fields read as for a disconnected, enabled twin.
        """
        twin = self._twin(device_id, module_id)
        document: JsonObject = {"deviceId": device_id}
        if module_id != DEVICE_TWIN:
            document["moduleId"] = module_id
        document.update(
            {
                "etag": twin.etag,
                "deviceEtag": twin.etag,
                "status": "enabled",
                "connectionState": "Disconnected",
                "lastActivityTime": "0001-01-01T00:00:00Z",
                "cloudToDeviceMessageCount": 0,
                "authenticationType": "sas",
                "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
                "modelId": "",
                "version": twin.version,
            }
        )
        document.update(identity or {})
        document["tags"] = copy.deepcopy(twin.tags)
        document["properties"] = {
            "desired": twin.desired.for_service(),
            "reported": twin.reported.for_service(),
        }
        if twin.configurations:
            document["configurations"] = copy.deepcopy(twin.configurations)
        return document

    # -- changes ---------------------------------------------------------------------------

    def patch_reported(self, device_id: str, module_id: str, patch: object) -> int:
        """Merge a module's reported patch; returns the new reported ``$version``."""
        patch_obj = rules.require_object(patch, "reported properties patch")
        rules.validate(patch_obj, "reported")
        twin = self._twin(device_id, module_id)
        new_doc = merge_patch(twin.reported.doc, patch_obj)
        rules.check_size(new_doc, rules.SECTION_MAX_BYTES, "reported properties")
        _commit(twin.reported, new_doc, patch_obj, self._now(), with_version=False)
        twin.version += 1
        self._save(device_id, module_id, twin)
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
        rules.check_etag(twin.etag, if_match)
        desired = rules.strip_system(
            rules.require_object(rules.or_empty(desired_patch), "desired properties")
        )
        tags = rules.require_object(rules.or_empty(tags_patch), "tags")
        rules.validate(desired, "desired")
        rules.validate(tags, "tags")
        new_desired = merge_patch(twin.desired.doc, desired)
        new_tags = merge_patch(twin.tags, tags)
        rules.check_size(new_desired, rules.SECTION_MAX_BYTES, "desired properties")
        rules.check_size(new_tags, rules.TAGS_MAX_BYTES, "tags")
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
        rules.check_etag(twin.etag, if_match)
        new_desired = copy.deepcopy(
            rules.strip_system(rules.require_object(rules.or_empty(desired), "desired properties"))
        )
        new_tags = twin.tags if tags is None else rules.require_object(tags, "tags")
        rules.validate(new_desired, "desired")
        rules.validate(new_tags, "tags")
        rules.check_size(new_desired, rules.SECTION_MAX_BYTES, "desired properties")
        rules.check_size(new_tags, rules.TAGS_MAX_BYTES, "tags")
        diff = merge_diff(twin.desired.doc, new_desired)
        self._apply(device_id, module_id, twin, new_desired, diff, copy.deepcopy(new_tags))

    def apply_modules_content(self, device_id: str, modules_content: object) -> list[str]:
        """Set the desired properties of every module a deployment names; returns their ids.

        Accepts the manifest form ``{"mod": {"properties.desired": {...}}}`` and the nested
        ``{"mod": {"properties": {"desired": {...}}}}``. All are validated before any is set.
        """
        content = rules.require_object(modules_content, "modulesContent")
        wanted: dict[str, JsonObject] = {}
        for module_id, entry in content.items():
            stripped = rules.strip_system(rules.desired_of(module_id, entry))
            rules.validate(stripped, f"{module_id} desired")
            rules.check_size(stripped, rules.SECTION_MAX_BYTES, f"{module_id} desired properties")
            wanted[module_id] = stripped
        with self._db.transaction():
            for module_id, desired in wanted.items():
                self.replace(device_id, module_id, desired=desired)
        return list(wanted)

    def set_configurations(self, device_id: str, module_id: str, statuses: JsonObject) -> None:
        """Record which deployments are ``Applied`` or ``Targeted`` (not a desired change)."""
        twin = self._twin(device_id, module_id)
        if twin.configurations != statuses:
            twin.configurations = copy.deepcopy(statuses)
            self._save(device_id, module_id, twin)

    # -- internals -------------------------------------------------------------------------

    def _twin(self, device_id: str, module_id: str) -> _Twin:
        key = (device_id, module_id)
        twin = self._twins.get(key)
        if twin is None:
            stamp = self._now()
            twin = _Twin()
            twin.desired.metadata = {"$lastUpdated": stamp, "$lastUpdatedVersion": 1}
            twin.reported.metadata = {"$lastUpdated": stamp}
            self._twins[key] = twin
            self._save(device_id, module_id, twin)
        return twin

    def _now(self) -> str:
        return rules.iso_timestamp(self._clock())

    def _save(self, device_id: str, module_id: str, twin: _Twin) -> None:
        self._db.put(TWINS, (device_id, module_id), twin.to_json())

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
            self._save(device_id, module_id, twin)
        if desired_patch:
            body: JsonObject = {**copy.deepcopy(desired_patch), "$version": twin.desired.version}
            for listener in list(self._desired_listeners):
                _notify(listener, device_id, module_id, copy.deepcopy(body))
        if changed_tags:
            for tags_listener in list(self._tags_listeners):
                _notify(tags_listener, device_id, module_id)


def _notify(listener: Callable[..., None], *args: object) -> None:
    try:
        listener(*args)
    except Exception:
        # A broken subscriber must not undo a change the hub has already accepted.
        log.exception("twin listener failed")


def _commit(
    section: _Section, new_doc: JsonObject, patch: JsonObject, when: str, *, with_version: bool
) -> None:
    section.doc = new_doc
    section.version += 1
    rules.stamp(section.metadata, patch, when, section.version if with_version else None)
