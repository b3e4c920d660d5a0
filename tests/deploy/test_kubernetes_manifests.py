"""deploy/kubernetes/: every manifest validates offline against the Kubernetes API's schemas
(kubernetes-validate, strict: no unknown fields), and the settings they give the classifier
are ones it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from edge_module.mqtt_settings import MqttSettings, hub_kind
from tests.conftest import REPO

MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.31.0"  # the oldest release IoT Operations supports that we check


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in documents(path) if doc["kind"] == kind]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.latest_version()])
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(
    path: Path, version: str
) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_classifier_gets_settings_it_accepts_and_a_client_id_per_pod() -> None:
    [config] = [c for c in by_kind("ConfigMap") if c["metadata"]["name"] == "classifier-config"]
    [deployment] = by_kind("Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    client_id = next(e for e in container["env"] if e["name"] == "MQTT_CLIENT_ID")
    assert client_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    env = dict(config["data"]) | {"MQTT_CLIENT_ID": "classifier-7d9f-abcde"}
    assert hub_kind(env) == "mqtt"
    settings = MqttSettings.from_env(env)
    assert settings.auth_method == "K8S-SAT"
    assert deployment["spec"]["replicas"] >= 2


def test_every_mounted_path_the_settings_name_is_mounted() -> None:
    [config] = [c for c in by_kind("ConfigMap") if c["metadata"]["name"] == "classifier-config"]
    [deployment] = by_kind("Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for key in ("MQTT_CA_FILE", "MQTT_AUTH_DATA_FILE", "MODEL_CACHE_DIR"):
        assert any(config["data"][key].startswith(mount) for mount in mounts), key
