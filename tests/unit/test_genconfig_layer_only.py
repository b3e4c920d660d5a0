"""A solution whose deployment template is itself a layered deployment (iotedgedev generates
one): genconfig generates it, checking the layer on its own and saying that its composition
over a base was not checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cloud_tools.__main__ import main
from cloud_tools.genconfig import GenconfigError, prepare
from tests.support.solution import edit_json, make_solution, solution_env

CAMERA = "layered.camera.template.json"
BASE = "deployment.template.json"


@pytest.fixture
def layer_only(tmp_path: Path) -> Path:
    """The repository's camera layer as the solution's one deployment template."""
    solution = make_solution(tmp_path / "solution")
    for template in solution.glob("*.template.json"):
        if template.name != CAMERA:
            template.unlink()
    shutil.move(solution / CAMERA, solution / BASE)
    return solution


def test_a_layer_that_is_the_solutions_deployment_template_is_generated(layer_only):
    generated = prepare(layer_only / BASE, "amd64", solution_env())
    assert generated.layered
    agent = generated.document["content"]["modulesContent"]["$edgeAgent"]
    image = agent["properties.desired.modules.framesource"]["settings"]["image"]
    assert image == "contoso.azurecr.io/framesource:0.1.0-amd64"
    assert any("over a base was not checked" in note for note in generated.notes)


def test_the_command_writes_it_and_says_what_was_not_checked(layer_only, monkeypatch, capsys):
    monkeypatch.chdir(layer_only)
    for name in ("CONTAINER_REGISTRY_SERVER", "DOTENV_FILE", "CONFIG_OUTPUT_DIR", "CONTAINER_TAG"):
        monkeypatch.delenv(name, raising=False)
    assert main(["genconfig", "-f", BASE, "-P", "amd64"]) == 0
    written = json.loads((layer_only / "config" / "deployment.amd64.json").read_text())
    assert "content" in written and "targetCondition" in written
    err = capsys.readouterr().err
    assert "over a base was not checked" in err and "--base" in err


def test_a_layer_checked_on_its_own_is_still_refused_for_its_own_faults(layer_only):
    def misuse(doc):
        del doc["targetCondition"]
        agent = doc["content"]["modulesContent"]["$edgeAgent"]
        agent["properties.desired.modules.framesource"]["settings"]["image"] = "${MODULES.ghost}"

    edit_json(layer_only / BASE, misuse)
    with pytest.raises(GenconfigError) as caught:
        prepare(layer_only / BASE, "amd64", solution_env())
    problems = "\n".join(caught.value.problems)
    assert "needs a targetCondition" in problems
    assert "${MODULES.ghost}" in problems and "no module folder" in problems


def test_a_base_named_explicitly_must_still_be_a_base(tmp_path):
    solution = make_solution(tmp_path / "solution")
    with pytest.raises(GenconfigError, match="a base cannot be a layer"):
        prepare(
            solution / CAMERA, "amd64", solution_env(), base=solution / "layered.gpu.template.json"
        )
