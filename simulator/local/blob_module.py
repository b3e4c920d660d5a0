"""The simulator's stand-in for the "Azure Blob Storage on IoT Edge" module: Azurite.

``python -m simulator.local.blob_module`` is the local command for the module image
``mcr.microsoft.com/azure-blob-storage`` (``layered.blobstorage.template.json``). Like the
real module it takes its account from its deployment's environment (``LOCAL_STORAGE_ACCOUNT_NAME``,
``LOCAL_STORAGE_ACCOUNT_KEY``), keeps its blobs in its volume (``BLOB_ROOT``, the device's
folder) and serves plain HTTP on port 11002 of the device's network: here the device's own
loopback address (``IOTEDGE_GATEWAYHOSTNAME``), so each simulated device has its own.
Modules on the device reach it with ``blob_connection_string``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from simulator.local.blob_storage import BlobStorageUnavailableError, find_azurite

MODULE_NAME = "azureblobstorageoniotedge"
BLOB_PORT = 11002
ACCOUNT_NAME = "edgecaptures"  # as layered.blobstorage.template.json sets it


def blob_connection_string(address: str, account: str, key: str) -> str:
    """How a module on the device (the classifier's capture) reaches the storage module."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
        f"BlobEndpoint=http://{address}:{BLOB_PORT}/{account};"
    )


def main() -> int:
    env = os.environ
    account, key = env.get("LOCAL_STORAGE_ACCOUNT_NAME"), env.get("LOCAL_STORAGE_ACCOUNT_KEY")
    host, root = env.get("IOTEDGE_GATEWAYHOSTNAME"), env.get("BLOB_ROOT")
    if not (account and key and host and root):
        print(
            "blob module: LOCAL_STORAGE_ACCOUNT_NAME, LOCAL_STORAGE_ACCOUNT_KEY, "
            "IOTEDGE_GATEWAYHOSTNAME and BLOB_ROOT are required",
            file=sys.stderr,
        )
        return 2
    try:
        binary = find_azurite()
    except BlobStorageUnavailableError as e:
        print(f"blob module: {e}", file=sys.stderr)
        return 2
    Path(root).mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        "--blobHost",
        host,
        "--blobPort",
        str(BLOB_PORT),
        "--location",
        root,
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    # exec: the runtime's SIGTERM reaches Azurite itself, as it would the module's process.
    os.execve(str(binary), argv, {**env, "AZURITE_ACCOUNTS": f"{account}:{key}"})


if __name__ == "__main__":
    sys.exit(main())
