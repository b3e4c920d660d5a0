# mypy: disallow-untyped-calls=False
"""Module twins: versions, merge patches, notifications, limits and the SDK-visible shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.iot.hub.protocol import models as hub_models
from msrest import Deserializer

from simulator.errors import HubError
from simulator.hub.twins import SECTION_MAX_BYTES, TwinStore
from simulator.jsondoc import JsonObject, JsonValue

D, M = "dev1", "classifier"


def at(document: JsonValue, *path: str) -> JsonValue:
    for key in path:
        assert isinstance(document, dict)
        document = document[key]
    return document


def store_with_listener() -> tuple[TwinStore, list[JsonObject]]:
    store = TwinStore.in_memory()
    seen: list[JsonObject] = []
    store.add_desired_listener(lambda _d, _m, patch: seen.append(patch))
    return store, seen


def test_a_new_twin_starts_at_version_one_in_the_mqtt_shape() -> None:
    assert TwinStore.in_memory().get_for_module(D, M) == {
        "desired": {"$version": 1},
        "reported": {"$version": 1},
    }


def test_reported_patches_merge_and_null_deletes() -> None:
    store = TwinStore.in_memory()
    assert store.patch_reported(D, M, {"a": 1, "b": {"c": 2, "d": 3}}) == 2
    assert store.patch_reported(D, M, {"a": None, "b": {"c": None, "e": 4}}) == 3
    assert store.get_for_module(D, M)["reported"] == {"b": {"d": 3, "e": 4}, "$version": 3}


def test_desired_and_reported_versions_move_independently() -> None:
    store = TwinStore.in_memory()
    store.patch_reported(D, M, {"x": 1})
    store.update(D, M, desired_patch={"threshold": 0.5})
    twin = store.get_for_module(D, M)
    assert twin["desired"] == {"threshold": 0.5, "$version": 2}
    assert twin["reported"] == {"x": 1, "$version": 2}


def test_a_desired_patch_is_announced_with_its_version() -> None:
    store, seen = store_with_listener()
    store.update(D, M, desired_patch={"threshold": 0.5, "labels": {"a": 1}})
    assert seen == [{"threshold": 0.5, "labels": {"a": 1}, "$version": 2}]


def test_a_replace_is_announced_as_a_diff_with_nulls_for_removed_keys() -> None:
    store, seen = store_with_listener()
    store.update(D, M, desired_patch={"keep": 1, "drop": 2, "nested": {"x": 1, "y": 2}})
    store.replace(D, M, desired={"keep": 1, "nested": {"x": 1}, "new": True})
    assert seen[-1] == {"drop": None, "nested": {"y": None}, "new": True, "$version": 3}
    assert store.get_for_module(D, M)["desired"] == {
        "keep": 1,
        "nested": {"x": 1},
        "new": True,
        "$version": 3,
    }


def test_a_tags_only_update_leaves_desired_alone_but_moves_the_etag() -> None:
    store, seen = store_with_listener()
    etag = store.etag(D, M)
    store.update(D, M, tags_patch={"site": "lab"})
    assert seen == []
    assert store.desired_version(D, M) == 1
    assert store.etag(D, M) != etag


@pytest.mark.parametrize("form", ["plain", "quoted", "weak", "star"])
def test_a_matching_etag_is_accepted_in_every_form(form: str) -> None:
    store = TwinStore.in_memory()
    etag = store.etag(D, M)
    header = {"plain": etag, "quoted": f'"{etag}"', "weak": f'W/"{etag}"', "star": "*"}[form]
    store.update(D, M, desired_patch={"a": 1}, if_match=header)


def test_a_stale_etag_is_a_412_and_changes_nothing() -> None:
    store = TwinStore.in_memory()
    stale = store.etag(D, M)
    store.update(D, M, desired_patch={"a": 1})
    with pytest.raises(HubError) as caught:
        store.update(D, M, desired_patch={"a": 2}, if_match=f'"{stale}"')
    assert caught.value.status == 412
    assert at(store.get_for_module(D, M), "desired", "a") == 1


def test_a_section_over_32_kb_is_refused_and_the_twin_is_unchanged() -> None:
    store = TwinStore.in_memory()
    store.patch_reported(D, M, {"small": 1})
    big = {f"k{i}": "x" * 1000 for i in range(SECTION_MAX_BYTES // 1000 + 1)}
    with pytest.raises(HubError) as caught:
        store.patch_reported(D, M, big)
    assert caught.value.status == 400
    assert store.get_for_module(D, M)["reported"] == {"small": 1, "$version": 2}


@pytest.mark.parametrize("key", ["$version", "a.b", "with space", ""])
def test_property_names_iot_hub_forbids_are_refused(key: str) -> None:
    with pytest.raises(HubError, match="ArgumentInvalid"):
        TwinStore.in_memory().patch_reported(D, M, {key: 1})


def test_a_patch_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(HubError, match="JSON object"):
        TwinStore.in_memory().patch_reported(D, M, [1, 2])


def test_the_service_shape_deserialises_into_the_sdks_twin_model() -> None:
    store = TwinStore.in_memory()
    store.update(D, M, desired_patch={"threshold": 0.5}, tags_patch={"site": "lab"})
    store.patch_reported(D, M, {"status": "ok"})
    document = store.get_for_service(D, M, {"connectionState": "Connected"})
    deserialize = Deserializer({k: v for k, v in vars(hub_models).items() if isinstance(v, type)})
    twin = deserialize("Twin", document)
    assert twin.module_id == M
    assert twin.etag == store.etag(D, M)
    assert twin.connection_state == "Connected"
    assert twin.tags == {"site": "lab"}
    assert twin.properties.desired["threshold"] == 0.5
    assert twin.properties.desired["$version"] == 2
    assert twin.properties.reported["status"] == "ok"


def test_metadata_records_when_and_at_which_version_each_desired_key_changed() -> None:
    ticks = iter(range(100))
    store = TwinStore.in_memory(
        clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(ticks))
    )
    store.update(D, M, desired_patch={"a": 1, "b": {"c": 2}})
    store.update(D, M, desired_patch={"b": {"c": 3}})
    meta: Any = at(store.get_for_service(D, M), "properties", "desired", "$metadata")
    assert meta["a"]["$lastUpdatedVersion"] == 2
    assert meta["b"]["c"]["$lastUpdatedVersion"] == 3
    assert meta["$lastUpdated"] == meta["b"]["c"]["$lastUpdated"] != meta["a"]["$lastUpdated"]


def test_deployment_content_sets_desired_for_every_module_named() -> None:
    store, seen = store_with_listener()
    modules = store.apply_modules_content(
        D,
        {
            "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}},
            M: {"properties": {"desired": {"threshold": 0.7}}},
        },
    )
    assert modules == ["$edgeHub", M]
    assert store.get_for_module(D, M)["desired"] == {"threshold": 0.7, "$version": 2}
    assert len(seen) == 2


def test_invalid_deployment_content_changes_no_twin() -> None:
    store = TwinStore.in_memory()
    with pytest.raises(HubError):
        store.apply_modules_content(
            D, {M: {"properties.desired": {"ok": 1}}, "broken": {"properties.desired": 5}}
        )
    assert store.get_for_module(D, M)["desired"] == {"$version": 1}


def test_a_failing_listener_does_not_undo_the_change() -> None:
    store = TwinStore.in_memory()

    def explode(_d: str, _m: str, _patch: JsonObject) -> None:
        raise RuntimeError("boom")

    store.add_desired_listener(explode)
    store.update(D, M, desired_patch={"a": 1})
    assert at(store.get_for_module(D, M), "desired", "a") == 1
