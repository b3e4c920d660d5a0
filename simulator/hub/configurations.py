"""IoT Hub configurations (automatic device and IoT Edge deployments), kept in the hub database.

Rules mirrored from IoT Hub: ids are lower case; ``content`` cannot change after creation
(only labels, target condition, priority and metrics can); updates and deletes honour
``If-Match``; creating an id that exists without ``If-Match`` is a conflict. The etag is
base64 of the configuration's version number, as IoT Hub's ``"MQ=="`` is of "1".
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
from collections.abc import Callable

from simulator.errors import HubError, QuerySyntaxError
from simulator.hub.database import CONFIGURATIONS, HubDatabase
from simulator.hub.twin_rules import iso_timestamp
from simulator.jsondoc import JsonObject, is_object
from simulator.query import parse_condition, parse_twin_query

_ID_RE = re.compile(r"[a-z0-9\-:+%_#*?!(),=@;']{1,128}")
_CONTENT_KINDS = ("modulesContent", "moduleContent", "deviceContent")
MAX_LIST = 100


def _etag(version: int) -> str:
    return base64.b64encode(str(version).encode("ascii")).decode("ascii")


def _etag_matches(if_match: str | None, etag: str) -> bool:
    """True for no ``If-Match``, a wildcard (quoted or not) or the current etag."""
    if if_match is None:
        return True
    wanted = if_match.strip().removeprefix("W/").strip('"')
    return wanted == "*" or (bool(etag) and wanted == etag)


Clock = Callable[[], dt.datetime]
# The target condition IoT Hub reads as "every device".
EVERY_DEVICE = "*"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConfigurationStore:
    """``__init__`` only assigns; use :meth:`load` (or :meth:`in_memory` in unit tests)."""

    def __init__(
        self, database: HubDatabase, items: dict[str, tuple[int, JsonObject]], clock: Clock
    ) -> None:
        self._db = database
        self._clock = clock
        self._items = items

    @classmethod
    def load(cls, database: HubDatabase, clock: Clock = _utc_now) -> ConfigurationStore:
        items: dict[str, tuple[int, JsonObject]] = {}
        for (config_id,), row in database.load(CONFIGURATIONS).items():
            version, doc = row["version"], row["doc"]
            assert isinstance(version, int)
            assert is_object(doc)
            items[config_id] = (version, doc)
        return cls(database, items, clock)

    @classmethod
    def in_memory(cls, clock: Clock = _utc_now) -> ConfigurationStore:
        return cls.load(HubDatabase.in_memory(), clock)

    def ids(self) -> list[str]:
        return list(self._items)

    def documents(self) -> list[JsonObject]:
        """Every configuration, oldest first (shared: callers must not change them)."""
        ordered = sorted(
            self._items.values(), key=lambda e: (str(e[1]["createdTimeUtc"]), str(e[1]["id"]))
        )
        return [doc for _, doc in ordered]

    def get(self, config_id: str) -> JsonObject:
        entry = self._items.get(config_id)
        if entry is None:
            raise HubError(404, "ConfigurationNotFound", f"configuration {config_id!r} not found")
        return copy.deepcopy(entry[1])

    def list(self, top: int | None = None) -> list[JsonObject]:
        limit = MAX_LIST if top is None else max(0, min(top, MAX_LIST))
        return [copy.deepcopy(doc) for doc in self.documents()[:limit]]

    def put(self, config_id: str, body: object, if_match: str | None) -> JsonObject:
        """Create or update; returns the stored document."""
        if not _ID_RE.fullmatch(config_id):
            raise HubError(400, "ArgumentInvalid", f"invalid configuration id {config_id!r}")
        if not is_object(body):
            raise HubError(400, "ArgumentInvalid", "the configuration must be a JSON object")
        if body.get("id") not in (None, config_id):
            raise HubError(400, "ArgumentInvalid", "the body's id does not match the URL")
        content = _check_content(body.get("content"))
        now = iso_timestamp(self._clock())
        existing = self._items.get(config_id)
        if existing is None:
            # An etag for something that does not exist can only be stale.
            if not _etag_matches(if_match, etag=""):
                raise HubError(
                    404, "ConfigurationNotFound", f"configuration {config_id!r} not found"
                )
            version, created = 1, now
        else:
            old_version, old = existing
            if if_match is None:
                raise HubError(409, "ConfigurationAlreadyExists", f"{config_id!r} already exists")
            if not _etag_matches(if_match, str(old["etag"])):
                raise HubError(412, "PreconditionFailed", "etag does not match")
            if content != old["content"]:
                raise HubError(400, "ArgumentInvalid", "a configuration's content cannot change")
            version, created = old_version + 1, str(old["createdTimeUtc"])
        doc: JsonObject = {
            "id": config_id,
            "schemaVersion": body.get("schemaVersion") or "1.0",
            "labels": _string_map(body.get("labels"), "labels"),
            "content": content,
            "targetCondition": _target_condition(body.get("targetCondition")),
            "createdTimeUtc": created,
            "lastUpdatedTimeUtc": now,
            "priority": _priority(body.get("priority")),
            "systemMetrics": {"results": {}, "queries": {}},
            "metrics": _metrics(body.get("metrics")),
            "etag": _etag(version),
        }
        self._items[config_id] = (version, doc)
        self._db.put(CONFIGURATIONS, (config_id,), {"version": version, "doc": doc})
        return copy.deepcopy(doc)

    def delete(self, config_id: str, if_match: str | None) -> None:
        entry = self._items.get(config_id)
        if entry is None:
            raise HubError(404, "ConfigurationNotFound", f"configuration {config_id!r} not found")
        if not _etag_matches(if_match, str(entry[1]["etag"])):
            raise HubError(412, "PreconditionFailed", "etag does not match")
        del self._items[config_id]
        self._db.delete(CONFIGURATIONS, (config_id,))


def _check_content(content: object) -> JsonObject:
    if not is_object(content):
        raise HubError(400, "ArgumentInvalid", "content must be a JSON object")
    present = [kind for kind in _CONTENT_KINDS if content.get(kind) is not None]
    if len(present) != 1:
        raise HubError(
            400, "ArgumentInvalid", "content needs exactly one of " + ", ".join(_CONTENT_KINDS)
        )
    if not is_object(content[present[0]]):
        raise HubError(400, "ArgumentInvalid", f"content.{present[0]} must be a JSON object")
    return {present[0]: copy.deepcopy(content[present[0]])}


def _string(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise HubError(400, "ArgumentInvalid", f"{field} must be a string")
    return value


def _target_condition(value: object) -> str:
    """Empty, ``*`` (every device) or a WHERE condition over device twins."""
    condition = _string(value, "targetCondition").strip()
    if condition and condition != EVERY_DEVICE:
        try:
            parse_condition(condition)
        except QuerySyntaxError as e:
            raise HubError(400, "ArgumentInvalid", f"targetCondition: {e}") from e
    return condition


def _string_map(value: object, field: str) -> JsonObject:
    if value is None:
        return {}
    if not is_object(value) or not all(isinstance(v, str) for v in value.values()):
        raise HubError(400, "ArgumentInvalid", f"{field} must map names to strings")
    return dict(value)


def _priority(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HubError(400, "ArgumentInvalid", "priority must be a non-negative integer")
    return value


def _metrics(value: object) -> JsonObject:
    if value is None:
        return {"results": {}, "queries": {}}
    if not is_object(value):
        raise HubError(400, "ArgumentInvalid", "metrics must be a JSON object")
    queries = _string_map(value.get("queries"), "metrics.queries")
    for name, text in queries.items():
        try:
            parse_twin_query(str(text))
        except QuerySyntaxError as e:
            raise HubError(400, "ArgumentInvalid", f"metrics.queries.{name}: {e}") from e
    return {"results": {}, "queries": queries}
