"""This repository's modules as local processes: the simulator's stand-in for their images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from simulator.certs import CA_CERT_FILE
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


def repo_module_commands(state_dir: Path) -> dict[str, ModuleCommand]:
    """The modules as local processes of a simulator whose state lives in ``state_dir``.

    What a container would get from its volumes and the device's trust settings comes from
    the simulator's state instead: the classifier's model cache (the image's volume) and the
    simulator's CA, which also signs the local Blob Storage emulator's certificate.
    """
    return {
        "classifier": ModuleCommand(
            argv=[sys.executable, "-m", "classifier"],
            cwd=REPO,
            env={
                "PYTHONPATH": _pythonpath(REPO / "modules" / "classifier"),
                "PYTHONUNBUFFERED": "1",
                "MODEL_CACHE_DIR": str(state_dir / "volumes" / "classifier-models"),
                "MODEL_DOWNLOAD_CA_FILE": str(state_dir / "certs" / CA_CERT_FILE),
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
