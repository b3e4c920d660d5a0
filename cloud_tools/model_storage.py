"""Models in Azure Blob Storage: upload once, hand devices a read-only, expiring SAS URL.

Blob names are content-addressed (``<model name>/<version>/<sha256>.onnx``), so uploading the
same file twice is harmless and two different files never overwrite each other. The
connection string comes from ``AZURE_STORAGE_CONNECTION_STRING`` and is never printed; the
SAS URL is printed on purpose (it is what a device needs), read-only and time-limited.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from classifier.engine import file_sha256
from cloud_tools.errors import USAGE, CliError
from cloud_tools.model_file import ModelFileError, read_spec

ENV_STORAGE = "AZURE_STORAGE_CONNECTION_STRING"


@dataclass(frozen=True)
class UploadedModel:
    url: str  # with the SAS query: a secret for as long as it is valid
    sha256: str
    size: int
    name: str
    version: str
    expires_at: datetime
    blob: str


def describe_file(path: Path) -> tuple[str, str, str, int]:
    """(name, version, sha256, size) of a self-describing model file, or ``CliError``."""
    if not path.is_file():
        raise CliError(f"no model file at {path}", USAGE)
    try:
        spec = read_spec(path)
    except ModelFileError as e:
        raise CliError(f"{path} is not a self-describing model: {e}", USAGE) from e
    return spec.name, spec.version, file_sha256(path), path.stat().st_size


def upload_model(
    path: Path, container: str, expiry_hours: float, connection_string: str | None = None
) -> UploadedModel:
    name, version, sha256, size = describe_file(path)
    connection = connection_string or os.environ.get(ENV_STORAGE)
    if not connection:
        raise CliError(f"no storage connection string: set {ENV_STORAGE}", USAGE)
    blob_name = f"{name}/{version}/{sha256}.onnx"
    expires = datetime.now(UTC) + timedelta(hours=expiry_hours)
    try:
        service = BlobServiceClient.from_connection_string(connection)
        container_client = service.get_container_client(container)
        if not container_client.exists():
            container_client.create_container()
        with path.open("rb") as data:
            container_client.upload_blob(blob_name, data, overwrite=True, length=size)
        credential = service.credential
        account = service.account_name
        if account is None:
            raise ValueError("the connection string names no storage account")
        sas = generate_blob_sas(
            account_name=account,
            container_name=container,
            blob_name=blob_name,
            account_key=credential.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=expires,
            start=datetime.now(UTC) - timedelta(minutes=5),  # device clocks drift
        )
    except (AzureError, ValueError, AttributeError) as e:
        raise CliError(f"upload to Blob Storage failed: {e}") from e
    url = f"{service.url.rstrip('/')}/{container}/{blob_name}?{sas}"
    return UploadedModel(url, sha256, size, name, version, expires, blob_name)
