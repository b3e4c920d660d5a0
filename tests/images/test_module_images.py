"""The module images as ``cloud_tools build`` makes them: they start as the Dockerfiles say,
score ``../shared/testdata`` as the module does on this machine, and start quietly."""

from __future__ import annotations

import subprocess
import sys

import docker
import pytest

from tests.conftest import REPO, TESTDATA
from tests.images.conftest import build_images, registry_name, run_in, scores, solution

# The first test builds the amd64 images: a minute or two on a cold cache.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

# ORT's results on another build of the same wheel, and under emulation, differ in the last
# float bits only.
TOLERANCE = 1e-4
SCORE = ["python", "-m", "classifier.score", "--json", "/data"]


def scored_here() -> dict[str, list[tuple[str, float]]]:
    done = subprocess.run(
        [sys.executable, "-m", "classifier.score", "--json", str(TESTDATA)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return scores(done.stdout)


def assert_same_scores(got, expected) -> None:
    assert sorted(got) == sorted(expected)
    for name, ranked in expected.items():
        assert [label for label, _ in got[name]] == [label for label, _ in ranked], name
        for (_, confidence), (_, wanted) in zip(got[name], ranked, strict=True):
            assert confidence == pytest.approx(wanted, abs=TOLERANCE), name


def test_the_classifier_image_scores_the_testdata_as_the_module_does_here(engine, images):
    stdout, _ = run_in(engine, images("amd64")["classifier"], SCORE)
    assert_same_scores(scores(stdout), scored_here())


@pytest.mark.parametrize("module", ["classifier", "framesource"])
def test_an_image_starts_without_warnings(engine, images, module):
    # Importing the module's package loads all it runs with (ONNX Runtime for the classifier,
    # whose telemetry warned at every start where the user had no home).
    _, stderr = run_in(
        engine, images("amd64")[module], ["python", "-c", f"import {module}.__main__"]
    )
    assert stderr == ""


def test_the_debug_image_starts_without_warnings(engine, images, tmp_path):
    images("amd64")  # the base image is there
    folder = solution(tmp_path / "solution")
    build_images(folder, "amd64", ("deployment.debug.template.json",))
    image = f"{registry_name()}/classifier:0.1.0-amd64.debug"
    _, stderr = run_in(engine, image, ["python", "-c", "import classifier.__main__"])
    assert stderr == ""


@pytest.mark.parametrize(
    ("module", "user"), [("classifier", "10001:10100"), ("framesource", "10002:10100")]
)
def test_an_image_runs_as_the_user_its_dockerfile_sets(
    engine: docker.DockerClient, images, module, user
):
    image = images("amd64")[module]
    assert engine.images.get(image).attrs["Config"]["User"] == user
    stdout, _ = run_in(engine, image, ["sh", "-c", "echo $(id -u):$(id -g)"])
    assert stdout.strip() == user
