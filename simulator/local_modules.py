"""This repository's modules as local processes: the simulator's stand-in for their images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from simulator.runtime import ModuleCommand

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "deployment.template.json"
# What ${MODULES.x} expands to when the simulator generates a manifest: the runtime maps the
# module name to a local command, so the image name is only a label here.
LOCAL_IMAGES = {"classifier": "local/classifier:dev", "synthcam": "local/synthcam:dev"}
LOCAL_VARIABLES = {
    "CONTAINER_REGISTRY_USERNAME": "local",
    "CONTAINER_REGISTRY_PASSWORD": "local",
    "CONTAINER_REGISTRY_ADDRESS": "localhost",
}


def _pythonpath(*parts: Path) -> str:
    return os.pathsep.join(str(p) for p in parts)


def repo_module_commands() -> dict[str, ModuleCommand]:
    return {
        "classifier": ModuleCommand(
            argv=[sys.executable, "-m", "classifier"],
            cwd=REPO,
            env={
                "PYTHONPATH": _pythonpath(REPO / "modules" / "classifier"),
                "PYTHONUNBUFFERED": "1",
            },
        ),
        "synthcam": ModuleCommand(
            argv=[sys.executable, "-m", "synthcam"],
            cwd=REPO,
            # synthcam renders with the repository's synthdata package, as its image would carry.
            env={
                "PYTHONPATH": _pythonpath(REPO / "modules" / "synthcam", REPO),
                "PYTHONUNBUFFERED": "1",
            },
        ),
    }
