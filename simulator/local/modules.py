"""This repository's modules as local processes: the simulator's stand-in for their images."""

from __future__ import annotations

import base64
import functools
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud_tools.genconfig import device_manifest
from cloud_tools.genconfig.environment import IOTEDGEDEV_DEFAULTS, modules_path
from simulator.device.device import DeviceSettings
from simulator.device.runtime import ModuleCommand
from simulator.local.blob_module import ACCOUNT_NAME, MODULE_NAME, blob_connection_string

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deployment.template.json"
# The demo camera comes as a layered deployment over the base, as on a real device.
CAMERA_LAYER = REPO / "layered.camera.template.json"
PLATFORM = "amd64"
# The variables the simulator generates its manifests with: a local registry, as
# iotedgedev's own .env starts with. The runtime maps each module name to a local command,
# so the images are only labels here, but they are the very tags module.json describes.
LOCAL_VARIABLES = {
    "CONTAINER_REGISTRY_SERVER": "localhost:5000",
    "CONTAINER_REGISTRY_USERNAME": "local",
    "CONTAINER_REGISTRY_PASSWORD": "local",
}


def local_environment(modules_dir: Path | None = None) -> dict[str, str]:
    """genconfig's variables for the simulator: iotedgedev's defaults plus LOCAL_VARIABLES,
    the modules folder when one is named, and the local Blob Storage module's account key
    (``layered.blobstorage``).

    Neither the shell's environment nor a .env file takes part, so a run is reproducible
    but for the key, which is a secret and new in every simulator process.
    """
    return {
        **IOTEDGEDEV_DEFAULTS,
        **LOCAL_VARIABLES,
        **modules_path(modules_dir),
        "LOCAL_STORAGE_ACCOUNT_KEY": local_storage_key(),
    }


@functools.cache
def local_storage_key() -> str:
    """The devices' local Blob Storage account key: the manifest's and the writers' one."""
    return base64.b64encode(secrets.token_bytes(64)).decode()


def local_device_manifest(
    template: Path = TEMPLATE, layers: Sequence[Path] = (CAMERA_LAYER,)
) -> dict[str, Any]:
    """The checked manifest of a device running ``template`` plus ``layers``, for amd64."""
    return device_manifest(template, layers, PLATFORM, local_environment())


def repo_module_commands(device: DeviceSettings) -> dict[str, ModuleCommand]:
    """The modules as local processes on ``device`` (a ``ModuleCommands`` for the fleet): the
    environment's python, where scripts/bootstrap.sh installed every package of the repository.

    What a container would get from its volumes and the device's trust settings comes from
    the device's folder instead: the classifier's model cache (the image's volume, one per
    device), the claim-check folder both modules mount (the ``frame-claims`` volume, one per
    device) and the simulator's CA, which also signs the local Blob Storage emulator's
    certificate. The local Blob Storage module (``layered.blobstorage``) keeps its blobs in
    the device's folder; the classifier is given its connection string (on a real device the
    deployment's classifier env carries it), so captures reach it once a layer deploys it.
    """
    volumes = device.state_dir / "volumes"
    claims = str(volumes / "frame-claims")
    return {
        "classifier": ModuleCommand(
            argv=[sys.executable, "-m", "classifier"],
            cwd=REPO,
            env={
                "PYTHONUNBUFFERED": "1",
                "MODEL_CACHE_DIR": str(volumes / "classifier-models"),
                "MODEL_DOWNLOAD_CA_FILE": str(device.ca_file),
                "CLAIM_CHECK_DIR": claims,
                "CAPTURE_STORAGE_CONNECTION_STRING": blob_connection_string(
                    device.address, ACCOUNT_NAME, local_storage_key()
                ),
            },
        ),
        MODULE_NAME: ModuleCommand(
            argv=[sys.executable, "-m", "simulator.local.blob_module"],
            cwd=REPO,
            env={"BLOB_ROOT": str(volumes / "blob-captures")},
        ),
        "framesource": ModuleCommand(
            argv=[sys.executable, "-m", "framesource"],
            cwd=REPO,
            env={"PYTHONUNBUFFERED": "1", "CLAIM_CHECK_DIR": claims},
        ),
    }
