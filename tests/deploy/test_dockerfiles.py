"""The module images, proven without a Docker engine: the files each COPY names exist in the
build context and get past .dockerignore; hadolint passes; every package each image installs
resolves to a wheel for that image's platform and Python."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.dockerfiles import Dockerfile, DockerIgnore, module_dockerfiles

DOCKERFILES = module_dockerfiles()
IDS = [f"{d.path.parent.name}-{d.platform}" for d in DOCKERFILES]
RESOLVE_TIMEOUT_S = 300
# Packages no module image may carry: TensorFlow and its kin, the cloud-side SDKs, and Ray
# (the batch scorer's, 240 MB). azure-storage-blob is not among them: the classifier writes
# its captures to the device's own Blob Storage module with it (docs/module-twin.md, Capture).
FORBIDDEN = {
    "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "azure-iot-hub", "uamqp",
    "msrest", "azure-eventhub", "azure-cli-core", "ray",
}  # fmt: skip
# Published only as source, pure Python: resolved as the wheel pip builds from the sdist,
# which the test checks is platform independent (py3-none-any).
SDIST_ONLY = ("paho-mqtt",)


@dataclass(frozen=True)
class BaseImage:
    python: str  # major.minor
    machine: str  # manylinux machine name
    glibc_minor: int  # 2.N


# The base images the Dockerfiles use, with what a wheel must be built for to run on them.
BASE_IMAGES = {
    "amd64/python:3.11.13-slim-bookworm": BaseImage("3.11", "x86_64", 36),
    "arm64v8/python:3.11.13-slim-bookworm": BaseImage("3.11", "aarch64", 36),
    "nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04": BaseImage("3.12", "x86_64", 39),
}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_every_file_a_copy_names_exists_in_the_build_context_and_is_sent(dockerfile: Dockerfile):
    ignore = DockerIgnore(dockerfile.context)
    sources = dockerfile.copy_sources()
    assert sources, "an image without the module's code"
    for source in sources:
        path = dockerfile.context / source
        assert path.exists(), f"{dockerfile.path.name}: COPY {source}: not in {dockerfile.context}"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        sent = [
            f for f in files if not ignore.excludes(f.relative_to(dockerfile.context).as_posix())
        ]
        assert sent, f"{dockerfile.path.name}: COPY {source}: .dockerignore keeps it all out"
        assert all(f.suffix != ".pyc" for f in sent)
        kept_out = [
            f
            for f in files
            if f not in sent and "__pycache__" not in f.parts and f.suffix != ".pyc"
        ]
        assert not kept_out, f"{dockerfile.path.name}: .dockerignore drops {kept_out}"


def test_the_build_context_leaves_out_the_environment_secrets_and_tests():
    ignore = DockerIgnore(REPO)
    for path in (".venv/bin/python", ".env", ".run/simulator/x", "tests/conftest.py", "config/a"):
        assert ignore.excludes(path), path


def test_every_dockerfile_in_a_module_folder_is_one_its_module_json_names():
    named = {d.path for d in DOCKERFILES}
    on_disk = {p.resolve() for d in DOCKERFILES for p in d.path.parent.glob("Dockerfile*")}
    assert on_disk == named


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_images_run_as_a_numeric_non_root_user_from_known_base_images(dockerfile: Dockerfile):
    assert set(dockerfile.base_images()) <= set(BASE_IMAGES), "add the base image to BASE_IMAGES"
    user = dockerfile.all("USER")[-1].arguments
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    assert dockerfile.requirement_files(), "installs from a pinned requirements file"


def test_the_gpu_requirements_are_the_cpu_ones_with_onnxruntime_gpu():
    def pins(name: str) -> dict[str, str]:
        lines = (REPO / "modules" / "classifier" / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith(("#", "-r")))

    cpu, gpu = pins("requirements.txt"), pins("requirements.gpu.txt")
    assert gpu.pop("onnxruntime-gpu") == cpu.pop("onnxruntime")
    assert gpu == cpu


@pytest.mark.registry
def test_hadolint_passes_every_dockerfile(tool: Callable[[str], Path]) -> None:
    hadolint = tool("hadolint")
    done = subprocess.run(
        [str(hadolint), "--no-color", "--config", str(REPO / ".hadolint.yaml")]
        + [str(d.path) for d in DOCKERFILES],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RESOLVE_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def sdist_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sdist-wheels")
    constraints = (REPO / "constraints.txt").read_text().splitlines()
    for name in SDIST_ONLY:
        [pin] = [line for line in constraints if line.lower().startswith(f"{name}==")]
        done = _pip("wheel", "--no-deps", "--no-binary", name, "-w", str(folder), pin)
        assert done.returncode == 0, done.stderr[-3000:]
    wheels = [p.name for p in folder.glob("*.whl")]
    assert len(wheels) == len(SDIST_ONLY)
    assert all(w.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")) for w in wheels), wheels
    return folder


@pytest.mark.registry
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_every_package_the_image_installs_has_a_wheel_for_its_platform_and_python(
    dockerfile: Dockerfile, sdist_wheels: Path, tmp_path: Path
) -> None:
    base = BASE_IMAGES[dockerfile.base_images()[-1]]
    platforms = [f"manylinux_2_{minor}_{base.machine}" for minor in range(5, base.glibc_minor + 1)]
    platforms += [f"manylinux{tag}_{base.machine}" for tag in ("2014", "2010", "1")]
    abi = "cp" + base.python.replace(".", "")
    [requirements] = dockerfile.requirement_files()
    folder = dockerfile.path.parent
    done = _pip(
        "install", "--dry-run", "--ignore-installed", "--quiet",
        "--target", str(tmp_path / "target"), "--report", str(tmp_path / "report.json"),
        *[f"--platform={p}" for p in platforms],
        "--python-version", base.python, "--implementation", "cp", "--abi", abi,
        "--only-binary=:all:", "--find-links", str(sdist_wheels),
        "-r", requirements, "-c", str(REPO / "constraints.txt"),
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    installed = {item["metadata"]["name"].lower().replace("_", "-") for item in report["install"]}
    assert not installed & FORBIDDEN
    gpu = dockerfile.platform.endswith(".gpu")
    assert ("onnxruntime-gpu" in installed) is gpu
    assert ("onnxruntime" in installed) is (not gpu and folder.name == "classifier")
