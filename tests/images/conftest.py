"""The module images, built as an operator builds them (``python -m cloud_tools build``) in the
engine that ``scripts/containers.sh up`` runs (``.ci/run`` starts it; DOCKER_HOST names it).

Where there is no engine, base image or arm64 emulation, the tests skip with the reason; under
CI (``EDGE_REQUIRE_TOOLS=1``) they fail instead, since CI is where they must run. The images'
tags carry a name derived from this checkout, so two checkouts sharing the engine do not
overwrite each other's images.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.conftest import REPO, TESTDATA

# The deployment tests' installer of pinned tools (scripts/tools.sh), a fixture here too.
from tests.deploy.conftest import tool  # noqa: F401
from tests.support.container_engine import require_image, unavailable
from tests.support.solution import DOTENV, make_solution, write_dotenv

BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 300
BASES = {
    "amd64": "amd64/python:3.11.13-slim-bookworm",
    "arm64v8": "arm64v8/python:3.11.13-slim-bookworm",
}
ARM64_EMULATION = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
# Where each layered template's images come from: the base template has the classifier, the
# camera layer the frame source.
TEMPLATES = ("deployment.template.json", "layered.camera.template.json")


def registry_name() -> str:
    return "edge-image-tests-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8]


def solution(folder: Path) -> Path:
    """The repository's templates with a .env of their own; modules/ is the checkout's."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (*REPO.glob("*.template.json"), REPO / ".dockerignore"):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "modules").symlink_to(REPO / "modules")
    (folder / ".env").write_text(
        f"CONTAINER_REGISTRY_SERVER={registry_name()}\n"
        "CONTAINER_REGISTRY_USERNAME=unused\nCONTAINER_REGISTRY_PASSWORD=unused\n"
    )
    return folder


def solution_with_tiny_dockerfiles(folder: Path, registry: str) -> Path:
    """A copy of the solution whose Dockerfiles build in no time: for what builds, not how."""
    make_solution(folder)
    write_dotenv(folder, {**DOTENV, "CONTAINER_REGISTRY_SERVER": registry})
    for dockerfile in folder.glob("modules/*/Dockerfile.*"):
        dockerfile.write_text(f"FROM scratch\nLABEL built-from={dockerfile.name}\n")
    return folder


def build_images(
    folder: Path, platform: str, templates: tuple[str, ...] = TEMPLATES
) -> dict[str, str]:
    """Module name -> the image tag ``cloud_tools build`` made for ``platform``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for template in templates:
        done = subprocess.run(
            [sys.executable, "-m", "cloud_tools", "build", "-q", "-f", template, "-P", platform],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return {
        module: f"{registry_name()}/{module}:0.1.0-{platform}"
        for module in ("classifier", "framesource")
    }


@pytest.fixture(scope="session")
def images(
    engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], dict[str, str]]:
    """``images("arm64v8")``: the module images for the platform, built once a session."""
    built: dict[str, dict[str, str]] = {}

    def for_platform(platform: str) -> dict[str, str]:
        if platform not in built:
            require_image(engine, BASES[platform])
            if platform == "arm64v8" and not ARM64_EMULATION.exists():
                unavailable("arm64 emulation (qemu-aarch64 in binfmt_misc) is not registered")
            folder = solution(tmp_path_factory.mktemp(f"solution-{platform}"))
            built[platform] = build_images(folder, platform)
        return built[platform]

    return for_platform


def run_in(engine: docker.DockerClient, image: str, command: list[str]) -> tuple[str, str]:
    """Runs ``command`` in a new container of ``image`` without a network; (stdout, stderr)."""
    container = engine.containers.run(
        image,
        command,
        network_mode="none",
        volumes={str(TESTDATA): {"bind": "/data", "mode": "ro"}},
        detach=True,
    )
    try:
        result = container.wait(timeout=RUN_TIMEOUT_S)
        stdout = container.logs(stdout=True, stderr=False).decode()
        stderr = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 0, stdout + stderr
    return stdout, stderr


def scores(json_lines: str) -> dict[str, list[tuple[str, float]]]:
    """``classifier.score --json`` output -> file name -> [(label, confidence)]."""
    found = {}
    for line in json_lines.splitlines():
        doc = json.loads(line)
        tags = [i["classification"]["tag"] for i in doc["inferences"]]
        found[Path(doc["frame"]["id"]).name] = [(t["value"], t["confidence"]) for t in tags]
    return found
