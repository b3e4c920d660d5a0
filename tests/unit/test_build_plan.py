"""Which images a template builds, from what, with which options and credentials
(``cloud_tools.genconfig.build_plan``); the tags themselves are compared with the real
iotedgedev's in tests/images/test_build_parity.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_tools.genconfig import GenconfigError, prepare
from cloud_tools.genconfig.build_plan import (
    BuildOptions,
    engine_platform,
    images_to_build,
    registry_credentials,
)
from tests.support.solution import make_solution, solution_env

MODULE_JSON = Path("module.json")


@pytest.fixture
def solution(tmp_path: Path) -> Path:
    return make_solution(tmp_path / "solution")


def _builds(solution: Path, template: str, platform: str, **env: str):
    return images_to_build(prepare(solution / template, platform, {**solution_env(), **env}))


def test_the_base_template_builds_the_classifier_from_its_platform_dockerfile(solution):
    [build] = _builds(solution, "deployment.template.json", "arm64v8")
    assert build.tag == "contoso.azurecr.io/classifier:0.1.0-arm64v8"
    assert build.platform == "arm64v8"
    assert build.dockerfile == solution / "modules" / "classifier" / "Dockerfile.arm64v8"
    assert build.context == solution  # module.json's contextPath "../.."


def test_a_layer_builds_only_its_own_modules_images(solution):
    [build] = _builds(solution, "layered.camera.template.json", "amd64")
    assert build.tag == "contoso.azurecr.io/framesource:0.1.0-amd64"


def test_the_debug_template_builds_the_debug_platform(solution):
    [build] = _builds(solution, "deployment.debug.template.json", "amd64")
    assert build.tag.endswith(":0.1.0-amd64.debug") and build.platform == "amd64.debug"
    assert build.dockerfile.name == "Dockerfile.amd64.debug"


def test_container_tag_goes_between_version_and_platform(solution):
    [build] = _builds(solution, "deployment.template.json", "amd64", CONTAINER_TAG="rc1")
    assert build.tag == "contoso.azurecr.io/classifier:0.1.0-rc1-amd64"


@pytest.mark.parametrize("bypass", ["classifier", "*", "framesource,classifier"])
def test_bypassed_modules_are_not_built(solution, bypass):
    assert _builds(solution, "deployment.template.json", "amd64", BYPASS_MODULES=bypass) == []


def test_a_module_not_bypassed_is_still_built(solution):
    builds = _builds(solution, "deployment.template.json", "amd64", BYPASS_MODULES="framesource")
    assert [b.tag.split("/")[1] for b in builds] == ["classifier:0.1.0-amd64"]


def test_build_options_map_to_the_engine_build(solution):
    module_json = solution / "modules" / "classifier" / MODULE_JSON
    document = json.loads(module_json.read_text())
    document["image"]["buildOptions"] = [
        "--build-arg VERSION=1.2",
        "--label=org.example.team=vision",
        "--add-host registry.example:127.0.0.7",
        "--network host",
        "--target build",
        "--no-cache",
    ]
    module_json.write_text(json.dumps(document))
    [build] = _builds(solution, "deployment.template.json", "amd64")
    assert build.options == BuildOptions(
        build_args={"VERSION": "1.2"},
        labels={"org.example.team": "vision"},
        extra_hosts={"registry.example": "127.0.0.7"},
        network="host",
        target="build",
        no_cache=True,
    )


@pytest.mark.parametrize(
    ("option", "why"),
    [
        ("--squash", "is not supported here"),
        ("--build-arg NOVALUE", "expected KEY=VALUE"),
        ("--network", "is not supported here"),
    ],
)
def test_a_build_option_it_cannot_honour_is_refused(option, why):
    with pytest.raises(GenconfigError) as caught:
        BuildOptions.parse((option,), MODULE_JSON)
    [problem] = caught.value.problems
    assert f"'{option}'" in problem and why in problem


def test_registry_credentials_come_in_groups_by_suffix():
    found = registry_credentials(
        {
            "CONTAINER_REGISTRY_SERVER": "Contoso.azurecr.io",
            "CONTAINER_REGISTRY_USERNAME": "contoso",
            "CONTAINER_REGISTRY_PASSWORD": "one",
            "CONTAINER_REGISTRY_SERVER_LOCAL": "127.0.0.1:5000",
            "CONTAINER_REGISTRY_PASSWORD_LOCAL": "two",
            "CONTAINER_REGISTRY_USERNAME_ORPHAN": "nobody",
        }
    )
    assert sorted(found) == ["127.0.0.1:5000", "contoso.azurecr.io"]
    assert found["contoso.azurecr.io"].password == "one"
    assert (found["127.0.0.1:5000"].username, found["127.0.0.1:5000"].password) == ("", "two")


@pytest.mark.parametrize(
    ("platform", "engine"),
    [
        ("amd64", "linux/amd64"),
        ("amd64.debug", "linux/amd64"),
        ("arm64v8", "linux/arm64"),
        ("windows-amd64", None),
    ],
)
def test_iot_edge_platforms_map_to_the_engine_platform(platform, engine):
    assert engine_platform(platform) == engine
