"""The container backend's translation of a module into a Docker create body, and the
registry credentials it pulls with: pure rules, checked without an engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.deployment.manifest import DesiredStatus, ModuleSpec, RestartPolicy
from simulator.device.container_config import (
    OWNER_LABEL,
    SCOPE_LABEL,
    ContainerSettings,
    container_config,
    registry_credential,
)

SETTINGS = ContainerSettings(
    scope="edgesim-12345678",
    device_id="dev 1",
    gateway_address="127.0.0.7",
    workload_socket=Path("/state/dev1/workload.sock"),
    extra_env={"MODEL_DOWNLOAD_CA_FILE": "/etc/edge-simulator/ca.pem"},
    extra_binds=("/state/certs/ca.pem:/etc/edge-simulator/ca.pem:ro",),
)
OPTIONS: dict[str, Any] = {
    "HostConfig": {
        "Mounts": [
            {"Type": "volume", "Source": "models", "Target": "/var/lib/models"},
            {"Type": "bind", "Source": "/srv/data", "Target": "/data"},
        ],
        "Binds": ["claims:/claims", "/srv/videos:/videos:ro"],
        "PortBindings": {"9600/tcp": [{"HostPort": "9600"}]},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
        "ExtraHosts": ["camera:127.0.0.9"],
    },
    "ExposedPorts": {"9600/tcp": {}},
    "Labels": {"team": "vision"},
    "Env": ["A=1"],
}
SPEC = ModuleSpec(
    name="classifier",
    image="127.0.0.1:5000/classifier:0.1.0-amd64",
    status=DesiredStatus.RUNNING,
    restart_policy=RestartPolicy.ON_FAILURE,
    version="1.0",
    create_options=OPTIONS,
)


def config() -> dict[str, Any]:
    return container_config(SPEC, {"A": "1", "IOTEDGE_MODULEID": "classifier"}, SETTINGS)


def test_named_volumes_are_scoped_to_the_simulator_and_device_and_host_paths_are_not():
    host = config()["HostConfig"]
    assert host["Mounts"][0]["Source"] == "edgesim-12345678-dev-1-models"
    assert host["Mounts"][1]["Source"] == "/srv/data"
    assert host["Binds"][:2] == ["edgesim-12345678-dev-1-claims:/claims", "/srv/videos:/videos:ro"]


def test_the_workload_socket_and_the_devices_binds_are_mounted():
    binds = config()["HostConfig"]["Binds"]
    assert "/state/dev1/workload.sock:/var/run/iotedge/workload.sock" in binds
    assert "/state/certs/ca.pem:/etc/edge-simulator/ca.pem:ro" in binds


def test_host_networking_drops_published_ports_and_resolves_edgehub_to_the_device():
    made = config()
    host = made["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert "PortBindings" not in host and "ExposedPorts" not in made
    assert host["ExtraHosts"] == ["camera:127.0.0.9", "edgeHub:127.0.0.7"]


def test_edge_agents_labels_join_the_modules_own_and_the_log_config_is_kept():
    made = config()
    labels = made["Labels"]
    assert labels["team"] == "vision"
    assert labels[OWNER_LABEL] == "Microsoft.Azure.Devices.Edge.Agent"
    assert labels["net.azure-devices.edge.restartPolicy"] == "on-failure"
    assert labels["net.azure-devices.edge.version"] == "1.0"
    assert json.loads(labels["net.azure-devices.edge.normalizedCreateOptions"]) == OPTIONS
    assert labels[SCOPE_LABEL] == "edgesim-12345678"
    assert made["HostConfig"]["LogConfig"] == OPTIONS["HostConfig"]["LogConfig"]
    assert made["HostConfig"]["RestartPolicy"] == {"Name": "no"}


def test_the_environment_given_becomes_the_env_list_in_order():
    assert config()["Env"] == ["A=1", "IOTEDGE_MODULEID=classifier"]
    assert config()["Image"] == SPEC.image


def test_the_create_options_given_are_not_changed():
    config()
    assert OPTIONS["HostConfig"]["Mounts"][0]["Source"] == "models"
    assert "PortBindings" in OPTIONS["HostConfig"]


def test_credentials_are_those_whose_address_is_the_images_registry():
    runtime = {
        "settings": {
            "registryCredentials": {
                "other": {"address": "example.azurecr.io", "username": "u1", "password": "p1"},
                "local": {"address": "127.0.0.1:5000", "username": "u2", "password": "p2"},
            }
        }
    }
    assert registry_credential(runtime, SPEC.image) == {"username": "u2", "password": "p2"}
    assert registry_credential(runtime, "busybox:1") is None
    assert registry_credential({}, SPEC.image) is None
