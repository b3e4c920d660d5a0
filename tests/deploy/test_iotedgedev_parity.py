"""The real iotedgedev 3.3.9 and ``python -m cloud_tools genconfig`` write the same bytes.

Both run as processes in a copy of the solution (templates, modules/*/module.json, a .env),
each in its own copy, with the same environment; iotedgedev's telemetry is switched off
through its settings file in a private HOME, and its schema download cannot leave the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud_tools.genconfig import prepare
from tests.conftest import REPO
from tests.support.solution import (
    TEMPLATE_PLATFORMS,
    edit_json,
    make_solution,
    solution_env,
)

pytestmark = pytest.mark.registry

RUN_TIMEOUT_S = 120
CASES = [(t, p) for t, platforms in TEMPLATE_PLATFORMS.items() for p in platforms]


def tool_environment(home: Path) -> dict[str, str]:
    """What iotedgedev and ours run with: a private HOME, the engine DOCKER_HOST names."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "DOCKER_HOST")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8")
    # iotedgedev fetches the schemas from the web to validate (and goes on without them);
    # a proxy on a closed loopback port makes that fail at once, whatever the network. The
    # engine's socket is no HTTP URL: no proxy applies to it.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = "http://127.0.0.1:9"
    return env


def iotedgedev_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose iotedgedev settings switch its telemetry off and skip its first-run prompt."""
    home = tmp_path_factory.mktemp("iotedgedev-home")
    (home / ".iotedgedev").mkdir()
    (home / ".iotedgedev" / "setting.ini").write_text(
        "[DEFAULT]\nfirsttime = no\ncollect_telemetry = no\n"
    )
    return home


@pytest.fixture(scope="module")
def iotedgedev(
    tool: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., subprocess.CompletedProcess[str]]:
    executable = tool("iotedgedev")
    home = iotedgedev_home(tmp_path_factory)

    def run(solution: Path, template: str, platform: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(executable), "solution", "genconfig", "-f", template, "-P", platform],
            cwd=solution,
            env=tool_environment(home),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )

    return run


def _ours(solution: Path, template: str, platform: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tools", "genconfig", "-f", template, "-P", platform],
        cwd=solution,
        env=tool_environment(solution.parent / "home"),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _both(tmp_path: Path, edit: Callable[[Path], None] | None = None) -> tuple[Path, Path]:
    theirs, ours = make_solution(tmp_path / "iotedgedev"), make_solution(tmp_path / "ours")
    if edit is not None:
        edit(theirs)
        edit(ours)
    return theirs, ours


@pytest.mark.parametrize(("template", "platform"), CASES)
def test_both_write_the_same_manifest_for_every_template_and_platform(
    iotedgedev, tmp_path, template, platform
):
    theirs, ours = _both(tmp_path)
    done = iotedgedev(theirs, template, platform)
    assert done.returncode == 0, done.stdout + done.stderr
    mine = _ours(ours, template, platform)
    assert mine.returncode == 0, mine.stderr
    name = f"{template.removesuffix('.template.json')}.{platform}.json"
    expected = (theirs / "config" / name).read_bytes()
    assert (ours / "config" / name).read_bytes() == expected
    # ...and what both wrote passes every check (schemas included).
    prepare(ours / template, platform, solution_env())


def _long_labels(solution: Path) -> None:
    def lengthen(doc):
        modules = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
        labels = {f"org.example.label{i}": "é-" + "x" * 150 for i in range(9)}
        modules["classifier"]["settings"]["createOptions"]["Labels"] = labels

    edit_json(solution / "deployment.template.json", lengthen)


def test_both_chunk_a_long_create_options_identically(iotedgedev, tmp_path):
    theirs, ours = _both(tmp_path, _long_labels)
    assert iotedgedev(theirs, "deployment.template.json", "amd64").returncode == 0
    assert _ours(ours, "deployment.template.json", "amd64").returncode == 0
    written = (ours / "config" / "deployment.amd64.json").read_bytes()
    assert written == (theirs / "config" / "deployment.amd64.json").read_bytes()
    settings = json.loads(written)["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"][
        "classifier"
    ]["settings"]
    assert "createOptions03" in settings and "createOptions04" not in settings


def test_both_refuse_create_options_over_4k_and_write_nothing(iotedgedev, tmp_path):
    def swell(solution: Path) -> None:
        def add(doc):
            modules = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
            modules["classifier"]["settings"]["createOptions"]["Labels"] = {"k": "v" * 4100}

        edit_json(solution / "deployment.template.json", add)

    theirs, ours = _both(tmp_path, swell)
    done = iotedgedev(theirs, "deployment.template.json", "amd64")
    mine = _ours(ours, "deployment.template.json", "amd64")
    assert (
        done.returncode != 0 and "maximum size of createOptions is 4K" in done.stdout + done.stderr
    )
    assert mine.returncode == 1 and "createOptions of classifier is" in mine.stderr
    assert not (theirs / "config" / "deployment.amd64.json").exists()
    assert not (ours / "config" / "deployment.amd64.json").exists()


def test_both_expand_bare_variables_and_an_explicit_platform_placeholder(iotedgedev, tmp_path):
    def vs_code_style(solution: Path) -> None:
        def bare(doc):
            desired = doc["modulesContent"]["$edgeAgent"]["properties.desired"]
            registry = desired["runtime"]["settings"]["registryCredentials"]["registry"]
            registry["username"] = "$CONTAINER_REGISTRY_USERNAME_contoso"
            desired["modules"]["classifier"]["settings"]["image"] = "${MODULES.classifier.arm64v8}"

        edit_json(solution / "deployment.template.json", bare)
        with (solution / ".env").open("a") as env:
            env.write("CONTAINER_REGISTRY_USERNAME_contoso=vscode-user\n")

    theirs, ours = _both(tmp_path, vs_code_style)
    assert iotedgedev(theirs, "deployment.template.json", "amd64").returncode == 0
    assert _ours(ours, "deployment.template.json", "amd64").returncode == 0
    written = (ours / "config" / "deployment.amd64.json").read_text()
    assert written == (theirs / "config" / "deployment.amd64.json").read_text()
    assert '"vscode-user"' in written and "classifier:0.1.0-arm64v8" in written
