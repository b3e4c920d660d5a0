"""Reading deployment manifests: offline schema validation, createOptions chunks, typed specs."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from simulator.deployment.manifest import (
    SCHEMAS_DIR_ENV,
    DesiredStatus,
    ManifestError,
    RestartPolicy,
    default_schemas_dir,
    join_create_options,
    load_manifest,
    parse_manifest,
    split_create_options,
)

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "deployment.classifier.amd64.json"


@pytest.fixture
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text())
    return loaded


def _modules(doc: dict[str, Any]) -> dict[str, Any]:
    modules: dict[str, Any] = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    return modules


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    return caught.value.problems


def test_the_fixture_manifest_loads_with_its_modules_in_startup_order():
    manifest = load_manifest(FIXTURE)
    assert [m.name for m in manifest.modules_in_startup_order()] == ["camera", "classifier"]
    assert set(manifest.system_modules) == {"edgeAgent", "edgeHub"}


def test_a_module_spec_carries_the_manifest_fields_typed():
    spec = load_manifest(FIXTURE).modules["classifier"]
    assert spec.image == "contosoacr.azurecr.io/classifier:0.1.0-amd64"
    assert spec.status is DesiredStatus.RUNNING
    assert spec.restart_policy is RestartPolicy.ON_FAILURE
    assert spec.version == "1.0"
    assert spec.startup_order == 2
    # Non-string env values keep their JSON spelling.
    assert spec.env == {"MODEL_PATH": "/models/classifier.onnx", "USE_GPU": "true"}


def test_chunked_create_options_are_reassembled_into_one_object():
    options = load_manifest(FIXTURE).modules["classifier"].create_options
    assert options["HostConfig"]["DeviceRequests"] == [{"Count": -1, "Capabilities": [["gpu"]]}]
    assert options["Labels"]["org.opencontainers.image.title"] == "classifier"


def test_routes_and_module_desired_properties_are_exposed_raw():
    manifest = load_manifest(FIXTURE)
    assert manifest.routes["cameraToClassifier"] == (
        'FROM /messages/modules/camera/outputs/frames INTO BrokeredEndpoint("/modules/classifier/inputs/frames")'
    )
    assert manifest.routes["classifierToUpstream"] == {
        "route": "FROM /messages/modules/classifier/outputs/* INTO $upstream",
        "priority": 0,
        "timeToLiveSecs": 86400,
    }
    assert manifest.store_and_forward_ttl_s == 7200
    assert manifest.module_desired["classifier"]["confidenceThreshold"] == 0.6
    assert manifest.hub_schema_version == "1.2"


def test_a_module_without_an_image_is_refused_with_its_path(document):
    del _modules(document)["camera"]["settings"]["image"]
    assert _problems(document) == [
        "modulesContent.$edgeAgent.properties.desired.modules.camera.settings: "
        "'image' is a required property"
    ]


def test_an_unknown_restart_policy_is_refused(document):
    _modules(document)["classifier"]["restartPolicy"] = "sometimes"
    [problem] = _problems(document)
    assert "modules.classifier.restartPolicy" in problem
    assert "'on-failure'" in problem


def test_every_schema_problem_is_reported_at_once(document):
    _modules(document)["classifier"]["restartPolicy"] = "sometimes"
    _modules(document)["camera"]["status"] = "paused"
    del document["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    assert len(_problems(document)) == 3


def test_a_route_priority_out_of_range_is_refused(document):
    routes = document["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    routes["classifierToUpstream"]["priority"] = 12
    assert any("routes.classifierToUpstream" in p for p in _problems(document))


def test_mqtt_broker_settings_are_refused_under_edge_hub_schema_1_1(document):
    hub = document["modulesContent"]["$edgeHub"]["properties.desired"]
    hub["mqttBroker"] = {"authorizations": []}
    parse_manifest(copy.deepcopy(document))
    hub["schemaVersion"] = "1.1"
    assert any("mqttBroker" in p for p in _problems(document))


def test_an_unsupported_schema_version_is_named(document):
    document["modulesContent"]["$edgeAgent"]["properties.desired"]["schemaVersion"] = "9.0"
    [problem] = _problems(document)
    assert "'9.0'" in problem


def test_a_deployment_template_is_refused_with_a_hint(document):
    document["$schema-template"] = "4.0.0"
    assert "genconfig" in _problems(document)[0]


def test_create_options_chunks_round_trip():
    options = {"HostConfig": {"Binds": [f"/data/{i}:/mnt/{i}" for i in range(100)]}}
    chunks = split_create_options(options)
    assert list(chunks)[:3] == ["createOptions", "createOptions01", "createOptions02"]
    assert all(len(c) <= 512 for c in chunks.values())
    assert join_create_options({"image": "x", **chunks}) == options


def test_a_missing_create_options_chunk_is_refused():
    chunks = split_create_options({"Labels": {"k": "v" * 1200}})
    del chunks["createOptions01"]
    with pytest.raises(ManifestError, match="createOptions01"):
        join_create_options(chunks)


def test_a_create_options_chunk_longer_than_a_twin_string_is_refused():
    with pytest.raises(ManifestError, match="512"):
        join_create_options({"createOptions": json.dumps({"Labels": {"k": "v" * 600}})})


def test_create_options_that_are_not_a_json_object_are_refused(document):
    _modules(document)["camera"]["settings"]["createOptions"] = '{"HostConfig": '
    [problem] = _problems(document)
    assert problem.startswith("camera: createOptions is not valid JSON")


def test_lower_case_create_options_key_is_accepted():
    assert join_create_options({"createoptions": '{"a": 1}'}) == {"a": 1}


def test_no_create_options_means_empty_options():
    assert join_create_options({"image": "x"}) == {}


def test_the_schemas_are_found_beside_the_repository(monkeypatch):
    monkeypatch.delenv(SCHEMAS_DIR_ENV, raising=False)
    monkeypatch.delenv("SHARED_DIR", raising=False)
    found = default_schemas_dir()
    assert (found / "azure-iot-edgeagent-deployment-1.1.json").is_file()


def test_the_schemas_directory_can_be_overridden(monkeypatch, tmp_path):
    shutil.copytree(default_schemas_dir(), tmp_path / "schemas")
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path / "schemas"))
    assert default_schemas_dir() == tmp_path / "schemas"
    load_manifest(FIXTURE)


def test_a_schemas_directory_without_schemas_is_an_error(tmp_path):
    with pytest.raises(ManifestError, match="no schemas"):
        load_manifest(FIXTURE, schemas_dir=tmp_path)


@pytest.mark.parametrize("image", ["${MODULES.classifier}", "$CLASSIFIER_IMAGE", "acr.io/${X}:1"])
def test_an_unexpanded_image_is_refused_as_edge_agent_refuses_it(document, image):
    _modules(document)["classifier"]["settings"]["image"] = image
    [problem] = _problems(document)
    assert problem.startswith(f"classifier: image {image!r} is an unexpanded template placeholder")


def test_an_image_that_is_not_an_image_reference_is_refused(document):
    _modules(document)["classifier"]["settings"]["image"] = "acr.io/classifier:1:2"
    assert _problems(document) == [
        "classifier: image 'acr.io/classifier:1:2' is not an image reference"
    ]
