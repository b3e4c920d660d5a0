"""``python -m cloud_tools build`` and the real ``iotedgedev solution build`` 3.3.9 build the
same image tags and write the same manifest, for every template and platform.

Each runs in its own copy of the solution against the engine DOCKER_HOST names, with
one-line Dockerfiles (what is compared is which images are built and what they are called,
not their contents), under a registry name of its own; the images are removed after.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from tests.deploy.test_iotedgedev_parity import CASES, iotedgedev_home, tool_environment
from tests.images.conftest import solution_with_tiny_dockerfiles

pytestmark = [pytest.mark.registry, pytest.mark.containers]

RUN_TIMEOUT_S = 300
# The modules whose images each template makes iotedgedev build (the metrics layer deploys
# Microsoft's metrics collector, which is pulled, not built).
BUILT = {
    "deployment.template.json": {"classifier"},
    "deployment.debug.template.json": {"classifier"},
    "layered.gpu.template.json": {"classifier"},
    "layered.camera.template.json": {"framesource"},
    "layered.metrics.template.json": set(),
}


@pytest.fixture(scope="module")
def iotedgedev(tool, tmp_path_factory) -> tuple[Path, Path]:
    """The real iotedgedev's executable and the HOME it runs with."""
    return tool("iotedgedev"), iotedgedev_home(tmp_path_factory)


def built_and_removed(engine: docker.DockerClient, registry: str) -> set[str]:
    tags = {
        tag
        for image in engine.images.list()
        for tag in image.tags
        if tag.startswith(f"{registry}/")
    }
    for tag in tags:
        engine.images.remove(tag, force=True)
    return tags


@pytest.mark.parametrize(("template", "platform"), CASES)
def test_both_build_the_same_tags_and_write_the_same_manifest(
    engine, iotedgedev, tmp_path, template, platform
):
    executable, home = iotedgedev
    registry = f"parity-{uuid.uuid4().hex[:8]}"
    theirs = solution_with_tiny_dockerfiles(tmp_path / "iotedgedev", registry)
    ours = solution_with_tiny_dockerfiles(tmp_path / "ours", registry)
    try:
        done = subprocess.run(
            [str(executable), "solution", "build", "-f", template, "-P", platform],
            cwd=theirs,
            env=tool_environment(home),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        their_tags = built_and_removed(engine, registry)
        mine = subprocess.run(
            [sys.executable, "-m", "cloud_tools", "build", "-q", "-f", template, "-P", platform],
            cwd=ours,
            env=tool_environment(tmp_path / "home"),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert mine.returncode == 0, mine.stdout + mine.stderr
        assert built_and_removed(engine, registry) == their_tags
        assert {tag.split("/")[1].split(":")[0] for tag in their_tags} == BUILT[template]
        name = f"{template.removesuffix('.template.json')}.{platform}.json"
        assert (ours / "config" / name).read_bytes() == (theirs / "config" / name).read_bytes()
    finally:
        built_and_removed(engine, registry)
