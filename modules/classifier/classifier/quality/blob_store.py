"""Writes captures to the device's local Blob Storage module with azure-storage-blob.

The IoT Edge way: a module beside the classifier ("Azure Blob Storage on IoT Edge"; on the
simulator, Azurite in its place) holds blobs on the device, tiers or uploads them to the cloud
when the link allows, and other modules write to it with the ordinary SDK and a connection
string to its local endpoint. This is the only file of the module that imports the SDK; its
errors leave it as ``CaptureStorageError`` with ``transient`` saying whether to retry.

The SDK's own retries are off: the capture stage retries with its own backoff, so a storage
that is down costs one short attempt per backoff step and never a thread blocked for minutes.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from classifier.quality.capture_settings import CaptureStorage
from classifier.quality.records import CaptureRecord

log = logging.getLogger(__name__)

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class CaptureStorageError(Exception):
    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


class BlobCaptureStore:
    """``__init__`` only assigns; the client is built (and the container made) on first write,
    so a module whose storage is down starts and scores all the same."""

    def __init__(self, storage: CaptureStorage) -> None:
        self.storage = storage
        self._container: ContainerClient | None = None

    def write(self, record: CaptureRecord) -> None:
        """Blocking: call from a worker thread. The frame first, then its sidecar."""
        try:
            container = self._container or self._open()
            timeout = self.storage.timeout_s
            container.upload_blob(
                record.frame_blob,
                record.frame,
                overwrite=True,
                content_settings=ContentSettings(content_type=record.content_type),
                timeout=int(max(1, timeout)),
            )
            container.upload_blob(
                record.sidecar_blob,
                record.sidecar,
                overwrite=True,
                content_settings=ContentSettings(content_type="application/json"),
                timeout=int(max(1, timeout)),
            )
        except HttpResponseError as e:
            status = e.status_code or 0
            self._container = None if status in (401, 403, 404) else self._container
            raise CaptureStorageError(
                f"storage answered {status}: {e.reason or e.message}", status in _TRANSIENT_STATUS
            ) from e
        except AzureError as e:
            raise CaptureStorageError(f"storage unreachable: {type(e).__name__}", True) from e
        except ValueError as e:  # a malformed connection string
            raise CaptureStorageError(f"storage settings: {e}", False) from e

    def _open(self) -> ContainerClient:
        assert self.storage.connection_string is not None
        # requests' verify: a CA file for a private CA, else the system's trust store
        verify: str | bool = str(self.storage.ca_file) if self.storage.ca_file else True
        service = BlobServiceClient.from_connection_string(
            self.storage.connection_string,
            retry_total=0,
            connection_timeout=self.storage.timeout_s,
            read_timeout=self.storage.timeout_s,
            connection_verify=verify,
        )
        container = service.get_container_client(self.storage.container)
        try:
            container.create_container(timeout=int(max(1, self.storage.timeout_s)))
            log.info("created capture container %r", self.storage.container)
        except ResourceExistsError:
            pass
        self._container = container
        return container
