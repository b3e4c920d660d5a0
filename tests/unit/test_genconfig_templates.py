"""The repository's templates generate checked manifests; chunking and layers as documented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_tools.__main__ import main
from cloud_tools.genconfig import GenconfigError, compose, generate_deployment, prepare
from cloud_tools.genconfig.generate import agent_modules
from cloud_tools.manifest import join_create_options
from simulator.deployment.manifest import parse_manifest
from tests.support.solution import (
    TEMPLATE_PLATFORMS,
    edit_json,
    make_solution,
    solution_env,
)


@pytest.fixture
def solution(tmp_path: Path) -> Path:
    return make_solution(tmp_path / "solution")


def _modules(document: dict[str, Any]) -> Any:
    return document["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]


@pytest.mark.parametrize(
    ("template", "platform"),
    [(t, p) for t, platforms in TEMPLATE_PLATFORMS.items() for p in platforms],
)
def test_every_repository_template_passes_every_check(solution, template, platform):
    generated = prepare(solution / template, platform, solution_env())
    assert "$" not in json.dumps(agent_modules(generated.document)[0])


def test_module_placeholders_become_the_module_json_tag_for_the_platform(solution):
    env = solution_env()
    amd64 = generate_deployment(solution / "deployment.template.json", "amd64", env)
    arm64 = generate_deployment(solution / "deployment.template.json", "arm64v8", env)
    gpu = generate_deployment(solution / "layered.gpu.template.json", "arm64v8", env)
    image = _modules(amd64.document)["classifier"]["settings"]["image"]
    assert image == "contoso.azurecr.io/classifier:0.1.0-amd64"
    assert _modules(arm64.document)["classifier"]["settings"]["image"].endswith("-arm64v8")
    layered = gpu.document["content"]["modulesContent"]["$edgeAgent"]
    # An explicit platform in the placeholder wins over the one generated for.
    assert layered["properties.desired.modules.classifier"]["settings"]["image"].endswith(
        "0.1.0-amd64.gpu"
    )


def test_container_tag_goes_between_version_and_platform(solution):
    env = {**solution_env(), "CONTAINER_TAG": "ci42"}
    generated = generate_deployment(solution / "deployment.template.json", "amd64", env)
    assert _modules(generated.document)["classifier"]["settings"]["image"].endswith(
        ":0.1.0-ci42-amd64"
    )


def test_the_output_is_named_as_iotedgedev_names_it(solution):
    env = solution_env()
    names = [
        generate_deployment(solution / t, "amd64", env).file_name
        for t in ("deployment.template.json", "layered.gpu.template.json")
    ]
    assert names == ["deployment.amd64.json", "layered.gpu.amd64.json"]


def test_long_create_options_are_chunked_in_place_and_reassemble(solution):
    labels = {f"label{i}": "x" * 90 for i in range(12)}

    def lengthen(doc):
        _modules(doc)["classifier"]["settings"]["createOptions"]["Labels"] = labels

    edit_json(solution / "deployment.template.json", lengthen)
    generated = prepare(solution / "deployment.template.json", "amd64", solution_env())
    settings = _modules(generated.document)["classifier"]["settings"]
    assert list(settings) == ["image", "createOptions", "createOptions01", "createOptions02"]
    assert all(len(settings[k]) <= 512 for k in list(settings)[1:])
    assert join_create_options(settings)["Labels"] == labels


def test_create_options_over_4k_are_refused_as_iotedgedev_refuses_them(solution):
    def swell(doc):
        _modules(doc)["classifier"]["settings"]["createOptions"]["Labels"] = {"k": "v" * 4200}

    edit_json(solution / "deployment.template.json", swell)
    with pytest.raises(GenconfigError, match=r"createOptions of classifier is \d+ characters"):
        generate_deployment(solution / "deployment.template.json", "amd64", solution_env())


def test_a_layer_composes_over_the_base_and_the_highest_priority_wins(solution):
    env = solution_env()
    base = prepare(solution / "deployment.template.json", "amd64", env).document
    gpu = prepare(solution / "layered.gpu.template.json", "amd64", env).document
    camera = prepare(solution / "layered.camera.template.json", "amd64", env).document
    cheap = json.loads(json.dumps(gpu))
    cheap["priority"] = 1
    classifier = cheap["content"]["modulesContent"]["$edgeAgent"][
        "properties.desired.modules.classifier"
    ]
    classifier["settings"]["image"] = "contoso.azurecr.io/classifier:0.1.0-amd64"
    device = parse_manifest(compose(base, [gpu, camera, cheap]))
    assert device.modules["classifier"].image.endswith("-amd64.gpu")
    assert device.modules["classifier"].create_options["HostConfig"]["DeviceRequests"]
    assert set(device.modules) == {"classifier", "framesource"}
    assert "framesourceFramesToClassifier" in device.routes


def test_the_gpu_layer_changes_only_image_gpu_access_and_provider(solution):
    env = solution_env()
    base = generate_deployment(solution / "deployment.template.json", "amd64", env).document
    gpu = generate_deployment(solution / "layered.gpu.template.json", "amd64", env).document
    ours = gpu["content"]["modulesContent"]["$edgeAgent"]["properties.desired.modules.classifier"]
    theirs = _modules(base)["classifier"]
    gpu_options = join_create_options(ours["settings"])
    assert gpu_options["HostConfig"].pop("DeviceRequests") == [
        {"Count": -1, "Capabilities": [["gpu"]]}
    ]
    assert gpu_options == join_create_options(theirs["settings"])
    assert {k: v for k, v in ours["env"].items() if k != "PROVIDER_POLICY"} == {
        **theirs["env"],
        "EXECUTION_PROVIDER": {"value": "cuda"},
    }
    assert {k: v for k, v in ours.items() if k not in ("settings", "env")} == {
        k: v for k, v in theirs.items() if k not in ("settings", "env")
    }


def test_the_debug_template_is_the_base_with_a_debuggable_classifier(solution):
    env = solution_env()
    base = generate_deployment(solution / "deployment.template.json", "amd64", env).document
    debug = generate_deployment(solution / "deployment.debug.template.json", "amd64", env).document
    assert _modules(debug)["classifier"]["settings"]["image"].endswith("0.1.0-amd64.debug")
    options = join_create_options(_modules(debug)["classifier"]["settings"])
    assert options["HostConfig"]["PortBindings"]["5678/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": "5678"}
    ]
    _modules(debug).pop("classifier")
    _modules(base).pop("classifier")
    assert debug == base


def test_the_command_writes_config_in_the_working_directory(solution, monkeypatch, capsys):
    monkeypatch.chdir(solution)
    for name in ("CONTAINER_REGISTRY_SERVER", "DOTENV_FILE", "CONFIG_OUTPUT_DIR", "CONTAINER_TAG"):
        monkeypatch.delenv(name, raising=False)
    assert main(["genconfig", "-f", "deployment.template.json", "-P", "arm64v8"]) == 0
    written = json.loads((solution / "config" / "deployment.arm64v8.json").read_text())
    assert _modules(written)["classifier"]["settings"]["image"].startswith("contoso.azurecr.io/")
    assert "config/deployment.arm64v8.json" in capsys.readouterr().out


def test_the_command_refuses_with_every_problem_and_writes_nothing(solution, monkeypatch, capsys):
    monkeypatch.chdir(solution)
    (solution / "modules" / "classifier" / "module.json").unlink()
    assert main(["genconfig", "-f", "deployment.template.json", "-P", "amd64"]) == 1
    assert not (solution / "config").exists()
    err = capsys.readouterr().err
    assert "nothing written" in err and "module.json is missing" in err
