"""Broken templates are refused with the exact problem, all problems at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud_tools.genconfig import GenconfigError, prepare
from tests.support.solution import edit_json, make_solution, solution_env

BASE = "deployment.template.json"
CAMERA = "layered.camera.template.json"


@pytest.fixture
def solution(tmp_path: Path) -> Path:
    return make_solution(tmp_path / "solution")


def _problems(solution: Path, template: str = BASE, platform: str = "amd64", env=None):
    with pytest.raises(GenconfigError) as caught:
        prepare(solution / template, platform, env or solution_env())
    return caught.value.problems[1:]  # the first line names the template


def _routes(doc: dict[str, Any]) -> Any:
    return doc["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]


def _layer_route(doc: dict[str, Any]) -> Any:
    return doc["content"]["modulesContent"]["$edgeHub"]


def test_a_route_that_does_not_parse_is_refused_with_its_name(solution):
    edit_json(solution / BASE, lambda d: _routes(d).update(bad="FROM /messages/* TO $upstream"))
    [problem] = _problems(solution)
    assert problem.startswith("route 'bad':") and "expected WHERE or INTO" in problem


def test_a_route_from_a_module_not_in_the_deployment_is_refused(solution):
    edit_json(
        solution / BASE,
        lambda d: _routes(d).update(ghost="FROM /messages/modules/camera/outputs/* INTO $upstream"),
    )
    assert _problems(solution) == [
        "route 'ghost': reads from module 'camera', which is not in this deployment "
        "(modules: classifier)"
    ]


def test_a_route_from_an_output_the_module_does_not_have_is_refused(solution):
    edit_json(
        solution / BASE,
        lambda d: _routes(d).update(
            typo="FROM /messages/modules/classifier/outputs/prediction INTO $upstream"
        ),
    )
    assert _problems(solution) == [
        "route 'typo': module 'classifier' has no output 'prediction' "
        "(its outputs: errors, predictions)"
    ]


def test_a_route_into_an_input_the_module_does_not_have_is_refused(solution):
    def wrong_input(doc):
        _layer_route(doc)["properties.desired.routes.framesourceFramesToClassifier"] = (
            "FROM /messages/modules/framesource/outputs/frames "
            'INTO BrokeredEndpoint("/modules/classifier/inputs/images")'
        )

    edit_json(solution / CAMERA, wrong_input)
    assert _problems(solution, CAMERA) == [
        "with base deployment.template.json: route 'framesourceFramesToClassifier': module "
        "'classifier' has no input 'images' (its inputs: frames)"
    ]


def test_an_input_renamed_through_the_module_env_is_the_name_routes_must_use(solution):
    def rename(doc):
        env = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]["classifier"]
        env["env"]["FRAMES_INPUT"] = {"value": "images"}

    edit_json(solution / BASE, rename)
    [problem] = _problems(solution, CAMERA)
    assert "has no input 'frames' (its inputs: images)" in problem


def test_an_unset_variable_is_refused_with_its_name_and_where_it_is(solution):
    env = solution_env()
    del env["CONTAINER_REGISTRY_PASSWORD"]
    [problem] = _problems(solution, env=env)
    assert problem == (
        "modulesContent.$edgeAgent.properties.desired.runtime.settings.registryCredentials."
        "registry.password: '${CONTAINER_REGISTRY_PASSWORD}' still holds "
        "${CONTAINER_REGISTRY_PASSWORD}: variable CONTAINER_REGISTRY_PASSWORD has no value "
        "(set it in .env or the environment)"
    )


def test_a_missing_module_json_is_named_as_the_reason_the_image_is_unexpanded(solution):
    (solution / "modules" / "classifier" / "module.json").unlink()
    [problem] = _problems(solution)
    assert problem.startswith(
        "modulesContent.$edgeAgent.properties.desired.modules.classifier.settings.image: "
        "'${MODULES.classifier}' still holds ${MODULES.classifier}: "
    )
    assert problem.endswith(
        "modules/classifier/module.json is missing, so iotedgedev leaves the placeholder as is"
    )


def test_a_platform_module_json_does_not_list_is_named(solution):
    [problem] = _problems(solution, platform="arm32v7")
    assert problem.endswith(
        "modules/classifier/module.json lists no platform 'arm32v7' "
        "(it lists: amd64, amd64.debug, amd64.gpu, arm64v8)"
    )


def test_an_image_that_module_json_does_not_build_is_refused(solution):
    def stale(doc):
        modules = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
        modules["classifier"]["settings"]["image"] = (
            "${CONTAINER_REGISTRY_SERVER}/classifier:0.0.9-amd64"
        )

    edit_json(solution / BASE, stale)
    [problem] = _problems(solution)
    assert problem.startswith(
        "classifier: image 'contoso.azurecr.io/classifier:0.0.9-amd64' is not one "
    )
    assert "contoso.azurecr.io/classifier:0.1.0-amd64" in problem


def test_a_dockerfile_module_json_names_must_exist(solution):
    (solution / "modules" / "classifier" / "Dockerfile.arm64v8").unlink()
    [problem] = _problems(solution, platform="arm64v8")
    assert problem.endswith("names ./Dockerfile.arm64v8 for arm64v8, which does not exist")


def test_schema_problems_and_other_problems_are_reported_together(solution):
    def break_two_things(doc):
        modules = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
        modules["classifier"]["restartPolicy"] = "sometimes"
        _routes(doc)["ghost"] = "FROM /messages/modules/camera/* INTO $upstream"

    edit_json(solution / BASE, break_two_things)
    problems = _problems(solution)
    assert len(problems) == 2
    assert "restartPolicy" in problems[0] and "'camera'" in problems[1]


def test_a_layer_without_target_condition_or_outside_its_paths_is_refused(solution):
    def misuse(doc):
        del doc["targetCondition"]
        doc["content"]["modulesContent"]["$edgeAgent"]["properties.desired.runtime"] = {}

    edit_json(solution / CAMERA, misuse)
    problems = _problems(solution, CAMERA)
    assert any("needs a targetCondition" in p for p in problems)
    assert any("may only set properties.desired.modules.<name>" in p for p in problems)
