"""JSON documents as IoT Hub treats them: RFC 7396 merge patches, diffs and encoded size.

Twins, twin patches and configuration content are all plain JSON; these helpers never mutate
their inputs, so a rejected patch leaves the stored document untouched.
"""

from __future__ import annotations

import copy
import json
from typing import TypeAlias, TypeGuard

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
JsonObject: TypeAlias = "dict[str, JsonValue]"


def is_object(value: object) -> TypeGuard[JsonObject]:
    return isinstance(value, dict)


def merge_patch(target: JsonObject, patch: JsonObject) -> JsonObject:
    """Apply ``patch`` to a copy of ``target``: null deletes, objects merge, the rest replaces."""
    result = copy.deepcopy(target)
    _merge_into(result, patch)
    return result


def _merge_into(target: JsonObject, patch: JsonObject) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif is_object(value):
            existing = target.get(key)
            child: JsonObject = existing if is_object(existing) else {}
            _merge_into(child, value)
            target[key] = child
        else:
            target[key] = copy.deepcopy(value)


def merge_diff(old: JsonObject, new: JsonObject) -> JsonObject:
    """The smallest merge patch that turns ``old`` into ``new`` (removed keys become null)."""
    patch: JsonObject = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
            continue
        before = old[key]
        if is_object(value) and is_object(before):
            child = merge_diff(before, value)
            if child:
                patch[key] = child
        # type() too, because True == 1 and 1 == 1.0 in Python but not in JSON.
        elif before != value or type(before) is not type(value):
            patch[key] = copy.deepcopy(value)
    return patch


def encoded_size(value: JsonValue) -> int:
    """Bytes of compact UTF-8 JSON: the measure the twin size limits are checked against."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def depth(value: JsonValue) -> int:
    """Nesting depth of objects; a flat object has depth 1, a scalar 0."""
    if not is_object(value):
        return 0
    return 1 + max((depth(child) for child in value.values()), default=0)
