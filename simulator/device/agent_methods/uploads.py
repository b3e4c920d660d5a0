"""``UploadModuleLogs``'s two halves: the blob upload, and the background task table that
``GetTaskStatus`` reads.

As edgeAgent (``AzureBlobRequestsUploader``): one blob per module in the container the SAS URL
names, called ``{iothub}/{device}/{module}-{yyyy-MM-dd--HH-mm-ss}.{log|json}[.gz]``, with
``Content-Type`` ``text/plain`` or ``application/json`` and ``Content-Encoding: gzip`` when
compressed; text goes to an append blob, JSON to a block blob; two retries. Uploads run in the
background: the method answers ``Running`` with a ``correlationId`` at once (``BackgroundTask``).

The task table is bounded (``MAX_TASKS``) with the overflow policy ``DROP_OLDEST_FINISHED``: a
new task evicts the oldest finished one, whose id then reads ``Unknown`` (as an id edgeAgent
never saw); with every slot still running, a new upload is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobType, ContainerClient, ContentSettings

from simulator.device.agent_methods.payloads import ContentEncoding, ContentType
from simulator.errors import RequestFailedError
from simulator.jsondoc import JsonObject

__all__ = ["DROP_OLDEST_FINISHED", "MAX_TASKS", "BackgroundTasks", "BlobLogUploader", "TaskStatus"]

log = logging.getLogger(__name__)

MAX_TASKS = 64
DROP_OLDEST_FINISHED = "drop-oldest-finished"
_UPLOAD_RETRIES = 2
_CONNECT_TIMEOUT_S = 20
_READ_TIMEOUT_S = 60


class TaskStatus(StrEnum):
    """edgeAgent's ``BackgroundTaskRunStatus``."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass
class _Task:
    operation: str
    status: TaskStatus
    message: str = ""


def task_response(correlation_id: str, status: TaskStatus, message: str) -> JsonObject:
    return {"status": str(status), "message": message, "correlationId": correlation_id}


class BackgroundTasks:
    """Runs operations in the background under a correlation id; see the module docstring."""

    def __init__(self, max_tasks: int = MAX_TASKS) -> None:
        self._max = max_tasks
        self._tasks: dict[str, _Task] = {}  # insertion order: oldest first
        self._running: set[asyncio.Task[None]] = set()

    def run(self, operation: str, work: Callable[[], Awaitable[None]]) -> JsonObject:
        self._make_room()
        correlation_id = str(uuid.uuid4())
        entry = _Task(operation, TaskStatus.RUNNING)
        self._tasks[correlation_id] = entry
        task = asyncio.create_task(self._follow(entry, work), name=f"{operation}:{correlation_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task_response(correlation_id, entry.status, entry.message)

    def status(self, correlation_id: str) -> JsonObject:
        entry = self._tasks.get(correlation_id)
        if entry is None:
            return task_response(correlation_id, TaskStatus.UNKNOWN, "")
        return task_response(correlation_id, entry.status, entry.message)

    async def close(self) -> None:
        """Cancel what still runs (the device is stopping)."""
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _make_room(self) -> None:
        if len(self._tasks) < self._max:
            return
        for correlation_id, entry in self._tasks.items():
            if entry.status is not TaskStatus.RUNNING:
                del self._tasks[correlation_id]
                return
        raise RequestFailedError(
            f"{self._max} background tasks are still running; try again when one has finished"
        )

    async def _follow(self, entry: _Task, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            entry.status = TaskStatus.CANCELLED
            raise
        except Exception as e:
            log.warning("%s failed: %s", entry.operation, e)
            entry.status = TaskStatus.FAILED
            entry.message = f"Task {entry.operation} failed because of error {_first_line(e)}"
        else:
            entry.status = TaskStatus.COMPLETED


class BlobLogUploader:
    """Uploads one module's logs to the container a SAS URL names (the azure-storage-blob SDK,
    synchronous, on a worker thread). ``ca_file``: the CA the storage's certificate is checked
    against (the simulator's, which signs the local Azurite's certificate)."""

    def __init__(self, iothub: str, device_id: str, ca_file: Path | None) -> None:
        self._iothub = iothub
        self._device_id = device_id
        self._verify: str | bool = str(ca_file) if ca_file is not None else True

    def blob_name(
        self, module: str, content_type: ContentType, encoding: ContentEncoding, at: datetime
    ) -> str:
        extension = "json" if content_type is ContentType.JSON else "log"
        if encoding is ContentEncoding.GZIP:
            extension += ".gz"
        stamp = at.astimezone(UTC).strftime("%Y-%m-%d--%H-%M-%S")
        return f"{self._iothub}/{self._device_id}/{module}-{stamp}.{extension}"

    async def upload(
        self,
        sas_url: str,
        module: str,
        body: bytes,
        content_type: ContentType,
        encoding: ContentEncoding,
    ) -> None:
        name = self.blob_name(module, content_type, encoding, datetime.now(UTC))
        await asyncio.to_thread(self._upload, sas_url, name, body, content_type, encoding)
        log.info("uploaded %d bytes of %s logs to %s", len(body), module, name)

    def _upload(
        self,
        sas_url: str,
        name: str,
        body: bytes,
        content_type: ContentType,
        encoding: ContentEncoding,
    ) -> None:
        settings = ContentSettings(
            content_type="application/json" if content_type is ContentType.JSON else "text/plain",
            content_encoding="gzip" if encoding is ContentEncoding.GZIP else None,
        )
        blob_type = BlobType.BLOCKBLOB if content_type is ContentType.JSON else BlobType.APPENDBLOB
        try:
            container = ContainerClient.from_container_url(
                sas_url,
                connection_verify=self._verify,
                retry_total=_UPLOAD_RETRIES,
                connection_timeout=_CONNECT_TIMEOUT_S,
                read_timeout=_READ_TIMEOUT_S,
            )
            with container:
                container.upload_blob(
                    name, body, blob_type=blob_type, content_settings=settings, overwrite=True
                )
        except (AzureError, ValueError) as e:
            raise RequestFailedError(f"uploading {name} failed: {_first_line(e)}") from e


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
