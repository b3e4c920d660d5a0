"""Deployment tooling tests. Those marked ``registry`` install or resolve packages from the
package index (the real iotedgedev, hadolint, other platforms' wheels); CI runs them, and
``scripts/test.sh -m "not registry"`` leaves them out on a machine without the index."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

INSTALL_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def tool() -> Callable[[str], Path]:
    """``tool("iotedgedev")``: the tool's executable, installed by scripts/tools.sh if needed."""

    def install(name: str) -> Path:
        done = subprocess.run(
            [str(REPO / "scripts" / "tools.sh"), name],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/tools.sh {name} failed:\n{done.stderr[-4000:]}")
        return Path(done.stdout.strip().splitlines()[-1])

    return install
