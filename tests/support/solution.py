"""A throwaway IoT Edge solution folder: the repository's templates and module descriptions.

iotedgedev and genconfig both read ``modules/<folder>/module.json`` relative to the
template and write ``config/`` in the working directory; tests run them in a copy so they
can break things and never touch the checkout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cloud_tools.genconfig.environment import IOTEDGEDEV_DEFAULTS
from tests.conftest import REPO

TEMPLATES = (
    "deployment.template.json",
    "deployment.debug.template.json",
    "layered.gpu.template.json",
    "layered.camera.template.json",
    "layered.metrics.template.json",
)
# Each template with the platforms it is generated for (the GPU layer names its platform).
TEMPLATE_PLATFORMS = {
    "deployment.template.json": ("amd64", "arm64v8"),
    "deployment.debug.template.json": ("amd64",),
    "layered.gpu.template.json": ("amd64",),
    "layered.camera.template.json": ("amd64", "arm64v8"),
    "layered.metrics.template.json": ("amd64", "arm64v8"),
}
MODULES = ("classifier", "framesource")
DOTENV = {
    "CONTAINER_REGISTRY_SERVER": "contoso.azurecr.io",
    "CONTAINER_REGISTRY_USERNAME": "contoso",
    "CONTAINER_REGISTRY_PASSWORD": "not-a-secret",
    "IOT_HUB_RESOURCE_ID": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub",
}


def make_solution(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATES:
        shutil.copy(REPO / name, folder / name)
    for module in MODULES:
        source, target = REPO / "modules" / module, folder / "modules" / module
        target.mkdir(parents=True)
        for path in [
            source / "module.json",
            source / "endpoints.json",
            *source.glob("Dockerfile.*"),
        ]:
            shutil.copy(path, target / path.name)
    write_dotenv(folder, DOTENV)
    return folder


def write_dotenv(folder: Path, values: dict[str, str]) -> None:
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def solution_env() -> dict[str, str]:
    """What genconfig sees in a solution made by ``make_solution`` with an empty environment."""
    return {**IOTEDGEDEV_DEFAULTS, **DOTENV}


def edit_json(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))
