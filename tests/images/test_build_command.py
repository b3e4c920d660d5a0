"""``python -m cloud_tools build --push`` pushes each image it builds to the registry its tag
names, with the ``CONTAINER_REGISTRY_*`` credentials of ``.env``, and says which build or
push failed, and why.

The registry is the CNCF Distribution registry (Debian's ``docker-registry``) on a loopback
address with basic auth; plain HTTP, which the engine allows for loopback registries.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import docker
import pytest
import requests

from simulator.mqtt.testing import random_loopback_host
from tests.conftest import REPO
from tests.images.conftest import solution_with_tiny_dockerfiles
from tests.support.container_engine import unavailable
from tests.support.solution import DOTENV, write_dotenv

pytestmark = pytest.mark.containers

START_TIMEOUT_S = 30
RUN_TIMEOUT_S = 300
USER, PASSWORD = "pusher", "right-secret"


@dataclass(frozen=True)
class Registry:
    server: str

    def tags(self, repository: str) -> list[str]:
        answer = requests.get(
            f"http://{self.server}/v2/{repository}/tags/list", auth=(USER, PASSWORD), timeout=10
        )
        return [] if answer.status_code == 404 else list(answer.json()["tags"] or [])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    executable = shutil.which("docker-registry")
    if executable is None:
        unavailable("docker-registry is not installed (scripts/containers.sh up installs it)")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()).decode()
    (tmp_path / "htpasswd").write_text(f"{USER}:{hashed}\n")
    host = random_loopback_host()
    with socket.socket() as probe:
        probe.bind((host, 0))
        server = f"{host}:{probe.getsockname()[1]}"
    (tmp_path / "config.yml").write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: '{server}'}}\n"
        f"auth: {{htpasswd: {{realm: tests, path: {tmp_path / 'htpasswd'}}}}}\n"
    )
    with (tmp_path / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            [str(executable), "serve", str(tmp_path / "config.yml")], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if requests.get(f"http://{server}/v2/", timeout=2).status_code == 401:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
        yield Registry(server)
    finally:
        process.terminate()
        process.wait(timeout=30)


def build_and_push(
    engine: docker.DockerClient, solution: Path, registry: Registry
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k in ("PATH", "DOCKER_HOST")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "cloud_tools", "build", "--push", "-q", "-P", "amd64"],
            cwd=solution,
            env={**environment, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    finally:
        for image in engine.images.list():
            for tag in image.tags:
                if tag.startswith(f"{registry.server}/"):
                    engine.images.remove(tag, force=True)


def solution_pushing_to(registry: Registry, tmp_path: Path, password: str) -> Path:
    solution = solution_with_tiny_dockerfiles(tmp_path / "solution", registry.server)
    credentials = {"CONTAINER_REGISTRY_USERNAME": USER, "CONTAINER_REGISTRY_PASSWORD": password}
    write_dotenv(solution, {**DOTENV, "CONTAINER_REGISTRY_SERVER": registry.server, **credentials})
    return solution


def test_push_sends_the_image_with_the_registry_credentials_of_env(engine, registry, tmp_path):
    solution = solution_pushing_to(registry, tmp_path, PASSWORD)
    done = build_and_push(engine, solution, registry)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{registry.server}/classifier:0.1.0-amd64 pushed" in done.stdout
    assert registry.tags("classifier") == ["0.1.0-amd64"]


def test_a_refused_push_fails_naming_the_image(engine, registry, tmp_path):
    solution = solution_pushing_to(registry, tmp_path, "wrong")
    done = build_and_push(engine, solution, registry)
    assert done.returncode == 1
    assert f"pushing {registry.server}/classifier:0.1.0-amd64 failed" in done.stderr
    assert registry.tags("classifier") == []


def test_a_failing_build_fails_naming_the_image_and_the_step(engine, registry, tmp_path):
    solution = solution_with_tiny_dockerfiles(tmp_path / "solution", registry.server)
    (solution / "modules" / "classifier" / "Dockerfile.amd64").write_text(
        "FROM amd64/python:3.11.13-slim-bookworm\nRUN no-such-command-here\n"
    )
    done = build_and_push(engine, solution, registry)
    assert done.returncode == 1
    assert f"building {registry.server}/classifier:0.1.0-amd64 failed" in done.stderr
    assert "no-such-command-here" in done.stderr
    assert registry.tags("classifier") == []
