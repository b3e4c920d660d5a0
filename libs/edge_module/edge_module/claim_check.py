"""Claim checks: a frame too large for an edgeHub message travels as a file on a volume both
modules mount, and a small reference message names it.

Why: edgeHub refuses messages over 256 KiB and the limit cannot be raised (Azure/iotedge
issues 269, 1554; the maintainers' advice is to pass a reference). A 1080p frame at good JPEG
quality does not fit.

The contract, one home for both sides:
- The producer (``ClaimStore.deposit``) writes the bytes under a fresh name, atomically
  (a hidden temporary file, fsync'd, renamed), and sends ``ClaimReference.to_message_body``
  with content type ``CLAIM_CHECK_CONTENT_TYPE``.
- The consumer (``ClaimStore.redeem``) reads the file named in the reference, checks its size
  and sha256 against it, and deletes it ("releases" it). A name is a bare file name: it cannot
  leave the folder, and the file is opened without following links. Each side resolves the
  name against its own mount point of the shared volume.
- The producer sweeps the folder (``ClaimStore.sweep``): files older than ``max_age_s`` (a
  consumer that is down, or a reference dropped on the way) and, whenever a deposit would
  pass ``budget_bytes`` or leave less than ``min_free_bytes`` on the file system, the oldest
  files first. The volume never fills; a late consumer gets ``ClaimMissingError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from edge_module.errors import EdgeModuleError

log = logging.getLogger(__name__)

CLAIM_CHECK_CONTENT_TYPE = "application/vnd.edge-claim-check+json"
CLAIM_CHECK_VERSION = 1
# A bare file name: what deposit makes, and nothing that can climb out of the folder.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TEMP_PREFIX = ".tmp-"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A reference is small; anything larger is not one.
MAX_REFERENCE_BYTES = 4_096


class ClaimCheckError(EdgeModuleError):
    """A claim check cannot be redeemed (each subclass is one reason)."""


class ClaimInvalidError(ClaimCheckError):
    """The reference is malformed, or names something that is not a file of the folder."""


class ClaimMissingError(ClaimCheckError):
    """The file is gone: swept by age or budget, redeemed already, or never written here."""


class ClaimAlteredError(ClaimCheckError):
    """The file is not what the reference describes: its size or its sha256 differ."""


class ClaimTooLargeError(ClaimCheckError):
    """The reference declares more bytes than the consumer accepts."""


@dataclass(frozen=True)
class ClaimReference:
    name: str
    size: int
    sha256: str
    content_type: str

    def to_message_body(self) -> bytes:
        doc = {
            "claimCheck": {
                "version": CLAIM_CHECK_VERSION,
                "name": self.name,
                "size": self.size,
                "sha256": self.sha256,
                "contentType": self.content_type,
            }
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_message_body(cls, body: bytes) -> ClaimReference:
        if len(body) > MAX_REFERENCE_BYTES:
            raise ClaimInvalidError(f"a claim-check reference is {len(body)} bytes; at most 4 KiB")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeError) as e:
            raise ClaimInvalidError(f"the claim-check reference is not JSON: {e}") from e
        claim = doc.get("claimCheck") if isinstance(doc, dict) else None
        if not isinstance(claim, dict):
            raise ClaimInvalidError('expected {"claimCheck": {...}}')
        version, name, size = claim.get("version"), claim.get("name"), claim.get("size")
        digest, content_type = claim.get("sha256"), claim.get("contentType")
        if version != CLAIM_CHECK_VERSION:
            raise ClaimInvalidError(f"claim-check version {version!r} is not supported")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ClaimInvalidError("the claim-check name must be a bare file name")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ClaimInvalidError("the claim-check size must be a positive integer")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ClaimInvalidError("the claim-check sha256 must be 64 lower-case hex digits")
        if not isinstance(content_type, str) or not 0 < len(content_type) <= 100:
            raise ClaimInvalidError("the claim-check contentType must be a short string")
        return cls(name, size, digest, content_type)


@dataclass(frozen=True)
class ClaimLimits:
    # The folder may hold this much; a deposit evicts the oldest files to stay under it.
    budget_bytes: int = 256 * 1024 * 1024
    # A file older than this is an orphan: its reference was lost or its consumer is away.
    max_age_s: float = 120.0
    # A deposit also evicts while the file system would be left with less than this free.
    min_free_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class SweepResult:
    expired: int = 0
    evicted: int = 0
    held_bytes: int = 0


class ClaimStore:
    """One side's view of the shared folder. Not thread-safe: one thread per store."""

    def __init__(self, folder: Path, limits: ClaimLimits | None = None) -> None:
        self.folder = folder
        self.limits = limits or ClaimLimits()

    # -- producer ------------------------------------------------------------------------

    def deposit(self, data: bytes, content_type: str, stem: str) -> tuple[ClaimReference, int]:
        """Writes ``data`` and returns its reference, and how many old files made room.

        ``stem`` (e.g. the frame id) makes names readable; a random suffix makes them unique.
        Raises ``ClaimCheckError`` when even an empty folder could not take ``data``.
        """
        if len(data) > self.limits.budget_bytes:
            raise ClaimTooLargeError(
                f"{len(data)} bytes exceed the claim-check budget of {self.limits.budget_bytes}"
            )
        evicted = self.sweep(incoming_bytes=len(data)).evicted
        safe_stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:120].lstrip("._-") or "frame"
        name = f"{safe_stem}-{secrets.token_hex(6)}{_suffix(content_type)}"
        temp = self.folder / f"{_TEMP_PREFIX}{name}"
        # Group-readable: the consumer runs as another user of the same group (the images).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.folder / name)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        digest = hashlib.sha256(data).hexdigest()
        return ClaimReference(name, len(data), digest, content_type), evicted

    def sweep(self, incoming_bytes: int = 0, now: float | None = None) -> SweepResult:
        """Deletes orphans (older than ``max_age_s``) and, oldest first, whatever keeps the
        folder over budget or the file system short of free space with ``incoming_bytes``
        more."""
        now = time.time() if now is None else now
        files: list[tuple[float, int, Path]] = []
        expired = 0
        for entry in _entries(self.folder):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # redeemed meanwhile
            if not stat.S_ISREG(info.st_mode):
                continue
            path = Path(entry.path)
            if now - info.st_mtime > self.limits.max_age_s:
                expired += _unlink(path)
            else:
                files.append((info.st_mtime, info.st_size, path))
        files.sort()
        held = sum(size for _, size, _ in files)
        evicted = 0
        while files and (
            held + incoming_bytes > self.limits.budget_bytes
            or self._free_bytes() - incoming_bytes < self.limits.min_free_bytes
        ):
            _, size, path = files.pop(0)
            evicted += _unlink(path)
            held -= size
        if expired or evicted:
            log.info("claim checks: %d expired, %d evicted for room", expired, evicted)
        return SweepResult(expired, evicted, held)

    def _free_bytes(self) -> int:
        info = os.statvfs(self.folder)
        return info.f_bavail * info.f_frsize

    # -- consumer ------------------------------------------------------------------------

    def redeem(self, reference: ClaimReference, max_bytes: int, release: bool = True) -> bytes:
        """The file's bytes, verified against ``reference``; deleted afterwards if ``release``."""
        if reference.size > max_bytes:
            raise ClaimTooLargeError(
                f"the claim check declares {reference.size} bytes; the limit is {max_bytes}"
            )
        path = self.folder / reference.name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError as e:
            raise ClaimMissingError(f"claim-check file {reference.name!r} does not exist") from e
        except OSError as e:  # ELOOP: a link; EACCES: not ours to read
            raise ClaimInvalidError(f"cannot open claim-check file {reference.name!r}: {e}") from e
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ClaimInvalidError(f"claim-check {reference.name!r} is not a regular file")
            if info.st_size != reference.size:
                raise ClaimAlteredError(
                    f"claim-check file {reference.name!r} is {info.st_size} bytes; "
                    f"the reference says {reference.size}"
                )
            data = file.read(reference.size + 1)
        if len(data) != reference.size or hashlib.sha256(data).hexdigest() != reference.sha256:
            raise ClaimAlteredError(
                f"claim-check file {reference.name!r} does not match the reference's sha256"
            )
        if release:
            _unlink(path)
        return data


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            # Temporary files count too: a writer that died leaves them, the age sweep ends them.
            return list(entries)
    except FileNotFoundError:
        return []


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0  # the consumer redeemed it meanwhile
    return 1


def _suffix(content_type: str) -> str:
    return {"image/jpeg": ".jpg", "image/png": ".png"}.get(content_type, ".bin")
