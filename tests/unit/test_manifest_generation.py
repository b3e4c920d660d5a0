"""The repository's deployment template generates a manifest the published schemas accept."""

from __future__ import annotations

import json

import pytest

from cloud_tools.manifest import TemplateError, generate_manifest, load_and_generate
from simulator.manifest import join_create_options, parse_manifest, validate_manifest
from tests.conftest import REPO

IMAGES = {
    "classifier": "registry.example/classifier:1.0-amd64",
    "synthcam": "registry.example/synthcam:1.0-amd64",
}
VARIABLES = {
    "CONTAINER_REGISTRY_USERNAME": "u",
    "CONTAINER_REGISTRY_PASSWORD": "p",
    "CONTAINER_REGISTRY_ADDRESS": "registry.example",
}


def test_repository_template_generates_a_valid_manifest() -> None:
    manifest = load_and_generate(REPO / "deployment.template.json", IMAGES, VARIABLES)
    validate_manifest(manifest)
    parsed = parse_manifest(manifest)
    assert parsed.modules["classifier"].image == IMAGES["classifier"]
    assert "$schema-template" not in json.dumps(manifest)


def test_long_create_options_are_chunked_and_reassemble() -> None:
    long_value = "x" * 1300
    template = {"m": {"settings": {"image": "i", "createOptions": {"Labels": {"k": long_value}}}}}
    settings = generate_manifest(template, {}, {})["m"]["settings"]
    assert set(settings) == {"image", "createOptions", "createOptions01", "createOptions02"}
    assert all(len(settings[k]) <= 512 for k in settings if k.startswith("createOptions"))
    assert join_create_options(settings) == {"Labels": {"k": long_value}}


def test_unknown_variables_are_named_not_left_in() -> None:
    with pytest.raises(TemplateError, match=r"MODULES\.other.*SECRET"):
        generate_manifest({"a": "${MODULES.other}", "b": "${SECRET}"}, {}, {})
