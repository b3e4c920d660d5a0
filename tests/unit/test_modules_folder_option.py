"""A template copied away from its solution folder: genconfig and ``simulator up`` look for
``modules/`` beside the template (as in an iotedgedev solution), say so in their help, and
take another modules folder from ``--modules``."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from cloud_tools.__main__ import build_parser as cloud_tools_parser
from cloud_tools.__main__ import main as cloud_tools_main
from simulator.cli.main import _parser as simulator_parser
from simulator.cli.run import startup_deployments
from simulator.errors import SimulatorError
from tests.conftest import REPO

TEMPLATE = "deployment.template.json"


@pytest.fixture
def lone_template(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return Path(shutil.copy(REPO / TEMPLATE, folder / TEMPLATE))


def subcommand_help(parser: argparse.ArgumentParser, name: str) -> str:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return " ".join(action.choices[name].format_help().split())


def test_simulator_up_without_modules_beside_the_template_names_the_folder_it_looked_in(
    lone_template: Path,
) -> None:
    args = simulator_parser().parse_args(["up", "--template", str(lone_template), "--base-only"])
    with pytest.raises(SimulatorError, match=r"no module folder .*elsewhere/modules/classifier"):
        startup_deployments(args)


def test_simulator_up_takes_the_modules_folder_from_an_option(lone_template: Path) -> None:
    args = simulator_parser().parse_args(
        ["up", "--template", str(lone_template), "--base-only", "--modules", str(REPO / "modules")]
    )
    [base] = startup_deployments(args)
    content = json.loads(json.dumps(base.content))  # plain Any, for reading
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    assert modules["classifier"]["settings"]["image"] == "localhost:5000/classifier:0.1.0-amd64"


@pytest.mark.parametrize("command", ["up", "demo"])
def test_simulator_help_says_where_modules_are_looked_up(command: str) -> None:
    text = subcommand_help(simulator_parser(), command)
    assert "modules/ beside the template" in text and "--modules" in text, text


def test_genconfig_takes_the_modules_folder_from_an_option(
    lone_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(lone_template.parent)
    monkeypatch.setenv("CONTAINER_REGISTRY_SERVER", "contoso.azurecr.io")
    monkeypatch.setenv("CONTAINER_REGISTRY_USERNAME", "contoso")
    monkeypatch.setenv("CONTAINER_REGISTRY_PASSWORD", "not-a-secret")
    monkeypatch.delenv("MODULES_PATH", raising=False)
    argv = ["genconfig", "-f", TEMPLATE, "-P", "amd64"]
    assert cloud_tools_main(argv) == 1
    assert cloud_tools_main([*argv, "--modules", str(REPO / "modules")]) == 0
    assert (lone_template.parent / "config" / "deployment.amd64.json").is_file()


def test_genconfig_help_says_where_modules_are_looked_up() -> None:
    text = subcommand_help(cloud_tools_parser(), "genconfig")
    assert "modules/ beside the template" in text and "--modules" in text, text
