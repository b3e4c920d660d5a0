"""Each module's endpoints.json (what genconfig checks routes against) says what its code does."""

from __future__ import annotations

import json
from pathlib import Path

from classifier.config import ModuleConfig
from cloud_tools.genconfig.checks import Endpoints
from framesource.config import FrameSourceConfig
from tests.conftest import REPO

MODULES = REPO / "modules"


def _declared(module: str) -> Endpoints:
    endpoints = Endpoints.load(MODULES / module)
    assert endpoints is not None
    return endpoints


def test_the_classifier_reads_and_writes_the_endpoints_it_declares():
    declared = _declared("classifier")
    config = ModuleConfig.from_env({})
    assert declared.input_names({}) == {config.input_name}
    assert declared.output_names({}) == {config.predictions_output, config.errors_output}


def test_the_classifier_renames_its_endpoints_through_the_variables_it_declares():
    declared = _declared("classifier")
    env = {variable: f"renamed-{name}" for name, variable in declared.inputs.items() if variable}
    env |= {variable: f"renamed-{name}" for name, variable in declared.outputs.items() if variable}
    config = ModuleConfig.from_env(env)
    assert declared.input_names(env) == {config.input_name} == {"renamed-frames"}
    assert declared.output_names(env) == {config.predictions_output, config.errors_output}


def test_the_frame_source_declares_the_output_its_code_sends_to_and_the_variable_renaming_it():
    declared = _declared("framesource")
    assert declared.inputs == {}
    assert declared.output_names({}) == {FrameSourceConfig.from_env({}).output}
    env = {variable: f"renamed-{name}" for name, variable in declared.outputs.items() if variable}
    assert (
        declared.output_names(env) == {FrameSourceConfig.from_env(env).output} == {"renamed-frames"}
    )


def test_every_module_folder_has_module_json_and_endpoints_json():
    for folder in (p for p in MODULES.iterdir() if p.is_dir()):
        for name in ("module.json", "endpoints.json"):
            assert json.loads((folder / name).read_text()), f"{folder.name}/{name}"
    assert Endpoints.load(Path("/nonexistent")) is None
