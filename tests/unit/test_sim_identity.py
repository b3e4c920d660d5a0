# mypy: disallow-untyped-calls=False
"""The identity registry: keys, connection strings the SDKs parse, persistence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from azure.iot.device.common.auth.connection_string import ConnectionString as DeviceCS
from azure.iot.device.common.auth.sastoken import RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from azure.iot.hub.connection_string import ConnectionString as HubCS

from simulator.errors import HubError, SasTokenError
from simulator.hub.database import HubDatabase, HubDatabaseError
from simulator.hub.registry import Registry

HUB = "sim-hub.local"


def test_an_edge_device_gets_the_two_system_module_identities() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    assert {m.module_id for m in registry.modules("dev1")} == {"$edgeAgent", "$edgeHub"}


def test_module_keys_are_32_random_bytes_in_base64() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    module = registry.add_module("dev1", "classifier")
    assert len(base64.b64decode(module.primary_key)) == 32
    assert module.primary_key != module.secondary_key


def test_adding_an_existing_module_keeps_its_keys_and_generation() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    first = registry.add_module("dev1", "classifier")
    assert registry.add_module("dev1", "classifier") == first


def open_registry(state_dir: Path, hub: str = HUB) -> Registry:
    return Registry.load(HubDatabase.open(state_dir), hub)


def test_a_restarted_registry_keeps_every_key(tmp_path: Path) -> None:
    registry = open_registry(tmp_path)
    registry.add_device("dev1")
    module = registry.add_module("dev1", "classifier")
    reloaded = open_registry(tmp_path)
    assert reloaded.get_module("dev1", "classifier") == module
    assert reloaded.get_device("dev1") == registry.get_device("dev1")
    assert reloaded.policy_keys == registry.policy_keys


def test_a_state_directory_of_another_hub_is_refused(tmp_path: Path) -> None:
    open_registry(tmp_path)
    with pytest.raises(HubDatabaseError, match="belongs to hub"):
        open_registry(tmp_path, "other-hub.local")


def test_a_registry_json_from_before_the_database_is_imported_once(tmp_path: Path) -> None:
    legacy = {
        "format": 1,
        "hubHostName": HUB,
        "policies": {"iothubowner": "b3duZXIta2V5LW9mLXRoZS1vbGQtaHViLTMyYnl0ZXM="},
        "devices": [
            {
                "device_id": "dev1",
                "primary_key": "a",
                "secondary_key": "b",
                "is_edge": True,
                "etag": "e",
            }
        ],
        "modules": [
            {
                "device_id": "dev1",
                "module_id": "classifier",
                "primary_key": "k1",
                "secondary_key": "k2",
                "generation_id": "g",
                "managed_by": "IotEdge",
                "etag": "e",
            }
        ],
    }
    (tmp_path / "registry.json").write_text(json.dumps(legacy))
    registry = open_registry(tmp_path)
    module = registry.require_module("dev1", "classifier")
    assert (module.primary_key, module.generation_id) == ("k1", "g")
    assert registry.policy_keys == legacy["policies"]


def test_the_device_sdk_parses_the_module_connection_string() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    module = registry.add_module("dev1", "classifier")
    parsed = DeviceCS(registry.module_connection_string("dev1", "classifier", "127.0.0.2"))
    assert parsed["HostName"] == HUB
    assert parsed["GatewayHostName"] == "127.0.0.2"
    assert parsed["ModuleId"] == "classifier"
    assert parsed["SharedAccessKey"] == module.primary_key


def test_the_service_sdk_parses_the_hub_connection_string() -> None:
    registry = Registry.in_memory(HUB)
    parsed = HubCS(registry.service_connection_string("127.0.0.1:8443"))
    assert parsed["HostName"] == "127.0.0.1:8443"
    assert parsed["SharedAccessKeyName"] == "iothubowner"


@pytest.mark.parametrize("key_name", ["primary_key", "secondary_key"])
def test_a_module_token_signed_with_either_key_is_accepted(key_name: str) -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    module = registry.add_module("dev1", "classifier")
    signer = SymmetricKeySigningMechanism(getattr(module, key_name))
    token = RenewableSasToken(f"{HUB}/devices/dev1/modules/classifier", signer)
    registry.verify_module_token("dev1", "classifier", str(token))


def test_a_token_after_key_rotation_with_the_old_key_is_refused() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    old = registry.add_module("dev1", "classifier")
    registry.rotate_module_keys("dev1", "classifier")
    signer = SymmetricKeySigningMechanism(old.primary_key)
    token = RenewableSasToken(f"{HUB}/devices/dev1/modules/classifier", signer)
    with pytest.raises(SasTokenError):
        registry.verify_module_token("dev1", "classifier", str(token))


def test_an_unknown_module_is_a_404() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    with pytest.raises(HubError) as caught:
        registry.verify_module_token("dev1", "ghost", "SharedAccessSignature sr=a&sig=b&se=1")
    assert caught.value.status == 404


def test_an_invalid_module_id_is_refused() -> None:
    registry = Registry.in_memory(HUB)
    registry.add_device("dev1")
    with pytest.raises(HubError) as caught:
        registry.add_module("dev1", "bad/id")
    assert caught.value.status == 400
