"""genconfig gathers and expands variables as iotedgedev 3.3.9 does, except that a value is
expanded inside the template's JSON strings, so that any value (a password) keeps the JSON valid."""

from __future__ import annotations

import json

import pytest

from cloud_tools.genconfig import Generated, prepare
from cloud_tools.genconfig.environment import (
    IOTEDGEDEV_DEFAULTS,
    expand_variables,
    load_environment,
)
from tests.support.solution import make_solution, solution_env


def test_braced_and_bare_variables_expand_and_unknown_ones_stay_as_written():
    env = {"SERVER": "acr.io", "CONTAINER_REGISTRY_USERNAME_x": "bob"}
    text = "${SERVER} $CONTAINER_REGISTRY_USERNAME_x ${MISSING} $MISSING $ {x}"
    assert expand_variables(text, env) == "acr.io bob ${MISSING} $MISSING $ {x}"


def test_an_expanded_value_is_not_expanded_again():
    assert expand_variables("${A}", {"A": "${B}", "B": "no"}) == "${B}"


def test_a_bare_name_ends_at_the_first_character_that_is_not_a_word_character():
    assert expand_variables("$A.b $A-c", {"A": "x"}) == "x.b x-c"


def test_module_placeholders_are_left_for_module_json(tmp_path):
    assert expand_variables("${MODULES.classifier.amd64}", {}) == "${MODULES.classifier.amd64}"


def test_dotenv_values_fill_in_what_the_environment_lacks(tmp_path):
    (tmp_path / ".env").write_text("A=from-file\nB=from-file\n# comment\nexport C='quoted'\n")
    env = load_environment(tmp_path, {"A": "from-environment"})
    assert (env["A"], env["B"], env["C"]) == ("from-environment", "from-file", "quoted")


def test_dotenv_interpolation_sees_earlier_lines_and_the_environment(tmp_path):
    (tmp_path / ".env").write_text("HOST=acr.io\nREPO=${HOST}/x\nUSER=${WHO}-ci\n")
    env = load_environment(tmp_path, {"WHO": "bob"})
    assert (env["REPO"], env["USER"]) == ("acr.io/x", "bob-ci")


def test_dotenv_file_names_another_file(tmp_path):
    (tmp_path / "prod.env").write_text("A=prod\n")
    assert load_environment(tmp_path, {"DOTENV_FILE": '"prod.env"'})["A"] == "prod"


def test_iotedgedev_defaults_fill_unset_and_blank_settings(tmp_path):
    env = load_environment(tmp_path, {"MODULES_PATH": "  ", "CONFIG_OUTPUT_DIR": "out"})
    assert env["MODULES_PATH"] == IOTEDGEDEV_DEFAULTS["MODULES_PATH"]
    assert env["CONFIG_OUTPUT_DIR"] == "out"
    assert env["DEFAULT_PLATFORM"] == "amd64"


def _registry_password(generated: Generated) -> object:
    agent = generated.document["modulesContent"]["$edgeAgent"]["properties.desired"]
    return agent["runtime"]["settings"]["registryCredentials"]["registry"]["password"]


@pytest.mark.parametrize(
    "password",
    ['pa"ss', "back\\slash", "ends\\", "two\nlines", "tab\there", "zoë-密码-🔑", '\\"}, "x": "'],
)
def test_any_registry_password_goes_into_the_manifest_exactly(tmp_path, password):
    solution = make_solution(tmp_path / "solution")
    env = {**solution_env(), "CONTAINER_REGISTRY_PASSWORD": password}
    generated = prepare(solution / "deployment.template.json", "amd64", env)
    assert _registry_password(generated) == password
    assert json.loads(generated.text) == generated.document


def test_a_dotenv_password_with_quotes_and_backslashes_is_expanded_as_a_json_string(tmp_path):
    solution = make_solution(tmp_path / "solution")
    (solution / ".env").write_text(
        (solution / ".env")
        .read_text()
        .replace(
            "CONTAINER_REGISTRY_PASSWORD=not-a-secret", "CONTAINER_REGISTRY_PASSWORD='a\"b\\c'"
        )
    )
    env = load_environment(solution, {})
    assert env["CONTAINER_REGISTRY_PASSWORD"] == 'a"b\\c'
    generated = prepare(solution / "deployment.template.json", "amd64", env)
    assert _registry_password(generated) == 'a"b\\c'
