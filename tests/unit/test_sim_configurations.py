"""Configurations: IoT Hub's create/update/delete rules."""

from __future__ import annotations

import pytest

from simulator.errors import HubError
from simulator.hub.configurations import ConfigurationStore
from simulator.jsondoc import JsonObject

CONTENT = {"modulesContent": {"$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}}}}


def test_a_created_configuration_reads_back_with_an_etag() -> None:
    store = ConfigurationStore.in_memory()
    created = store.put(
        "deploy-1", {"content": CONTENT, "targetCondition": "tags.a='b'", "priority": 10}, None
    )
    assert created["etag"] == "MQ=="
    assert store.get("deploy-1") == created


def test_creating_an_existing_id_without_if_match_is_a_conflict() -> None:
    store = ConfigurationStore.in_memory()
    store.put("deploy-1", {"content": CONTENT}, None)
    with pytest.raises(HubError) as caught:
        store.put("deploy-1", {"content": CONTENT}, None)
    assert caught.value.status == 409


def test_an_update_with_the_current_etag_bumps_it_and_a_stale_one_is_a_412() -> None:
    store = ConfigurationStore.in_memory()
    created = store.put("deploy-1", {"content": CONTENT}, None)
    updated = store.put("deploy-1", {"content": CONTENT, "priority": 5}, str(created["etag"]))
    assert updated["etag"] != created["etag"]
    assert updated["createdTimeUtc"] == created["createdTimeUtc"]
    with pytest.raises(HubError) as caught:
        store.put("deploy-1", {"content": CONTENT}, str(created["etag"]))
    assert caught.value.status == 412


def test_content_cannot_change_after_creation() -> None:
    store = ConfigurationStore.in_memory()
    store.put("deploy-1", {"content": CONTENT}, None)
    other: JsonObject = {"modulesContent": {"$edgeAgent": {"properties.desired": {}}}}
    with pytest.raises(HubError, match="content cannot change"):
        store.put("deploy-1", {"content": other}, "*")


@pytest.mark.parametrize(
    ("config_id", "body"),
    [
        ("Upper", {"content": CONTENT}),
        ("ok", {"content": {}}),
        ("ok", {"content": {"modulesContent": {}, "deviceContent": {}}}),
        ("ok", {"content": CONTENT, "priority": -1}),
        ("ok", {"content": CONTENT, "labels": {"a": 1}}),
        ("ok", {"id": "other", "content": CONTENT}),
    ],
)
def test_invalid_configurations_are_refused(config_id: str, body: object) -> None:
    with pytest.raises(HubError) as caught:
        ConfigurationStore.in_memory().put(config_id, body, None)
    assert caught.value.status == 400


def test_list_honours_top_and_delete_removes() -> None:
    store = ConfigurationStore.in_memory()
    for name in ("a", "b", "c"):
        store.put(name, {"content": CONTENT}, None)
    assert len(store.list(2)) == 2
    store.delete("b", "*")
    assert [c["id"] for c in store.list()] == ["a", "c"]
    with pytest.raises(HubError) as caught:
        store.delete("b", None)
    assert caught.value.status == 404
