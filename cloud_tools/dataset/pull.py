"""``dataset pull``: captures from a Blob Storage container into a dataset folder.

Blob names start ``<device>/<YYYY-MM-DD>/<HHMMSS.mmm>_<policy>_``, so a device is one prefix
and time and policy are read from the name without opening a sidecar. A capture is pulled
whole (frame, then sidecar) or not at all, and one already in the folder is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient, ContainerClient

from cloud_tools.errors import USAGE, CliError

_NAME = re.compile(
    r"^(?P<device>[^/]+)/(?P<day>\d{4}-\d\d-\d\d)/(?P<time>\d{6}\.\d{3})_(?P<policy>low_confidence|margin|classes|random)_"
)


@dataclass(frozen=True)
class PullFilter:
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    policies: frozenset[str] = frozenset()

    def wants(self, name: str) -> bool:
        match = _NAME.match(name)
        if match is None:
            return False
        if self.policies and match["policy"] not in self.policies:
            return False
        at = datetime.strptime(f"{match['day']} {match['time']}", "%Y-%m-%d %H%M%S.%f")
        at = at.replace(tzinfo=UTC)
        if self.since is not None and at < self.since:
            return False
        return self.until is None or at < self.until


@dataclass(frozen=True)
class PullResult:
    pulled: int
    already_here: int
    bytes: int


def parse_time(text: str) -> datetime:
    """ISO date or time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise CliError(f"{text!r} is not an ISO date or time ({e})", USAGE) from e
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pull(connection_string: str, container: str, folder: Path, wanted: PullFilter) -> PullResult:
    try:
        service = BlobServiceClient.from_connection_string(connection_string)
        client = service.get_container_client(container)
        prefix = f"{wanted.device}/" if wanted.device else None
        sidecars = [
            b.name
            for b in client.list_blobs(name_starts_with=prefix)
            if b.name.endswith(".json") and wanted.wants(b.name)
        ]
        return _download(client, sidecars, folder)
    except AzureError as e:
        raise CliError(f"reading container {container!r} failed: {e}") from e
    except ValueError as e:
        raise CliError(f"storage connection string: {e}", USAGE) from e


def _download(client: ContainerClient, sidecars: Sequence[str], folder: Path) -> PullResult:
    pulled = here = size = 0
    for name in sidecars:
        target = _inside(folder, name)
        if target.exists():
            here += 1
            continue
        sidecar = client.download_blob(name).readall()
        frame_name = _frame_name(name, sidecar)
        frame = client.download_blob(frame_name).readall()
        target.parent.mkdir(parents=True, exist_ok=True)
        _inside(folder, frame_name).write_bytes(frame)
        target.write_bytes(sidecar)  # last: a sidecar in the folder always has its frame
        pulled += 1
        size += len(frame) + len(sidecar)
    return PullResult(pulled, here, size)


def _frame_name(sidecar_name: str, body: bytes) -> str:
    try:
        blob = str(json.loads(body)["frame"]["blob"])
    except (ValueError, KeyError, TypeError) as e:
        raise CliError(f"{sidecar_name}: not a capture sidecar ({e})") from e
    if PurePosixPath(blob).parent != PurePosixPath(sidecar_name).parent:
        raise CliError(f"{sidecar_name}: its frame {blob!r} is not beside it")
    return blob


def _inside(folder: Path, name: str) -> Path:
    """The local path of a blob; a name that would leave the folder is refused."""
    parts = PurePosixPath(name).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or name.startswith("/"):
        raise CliError(f"blob name {name!r} cannot be a path inside the dataset folder")
    return folder.joinpath(*parts)
