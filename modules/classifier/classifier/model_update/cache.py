"""The persistent model cache on the module's volume (``MODEL_CACHE_DIR``).

Layout::

    <cache>/models/<sha256>.onnx    verified models, named by their digest
    <cache>/staging/<sha256>.part   downloads in progress (resumed after a restart)
    <cache>/state.sqlite            which model is active, previous, or being tried

SQLite (standard library) keeps the state consistent across crashes and power cuts: each
change is one transaction. The cache is bounded: besides a download in progress it holds the
active model, the previous one (for rollback) and the candidate being tried, nothing else.

A file is trusted only after its digest is checked again on the way in (``verified_path``),
so a cached model corrupted on disk is detected and not used.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from classifier.engine import file_sha256
from classifier.errors import ModelUpdateError, UpdateErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedModel:
    sha256: str
    name: str | None
    version: str | None
    size: int
    added_at: str


@dataclass(frozen=True)
class Failure:
    """A model that failed for a desired version: not tried again until the desired changes."""

    desired_version: int
    sha256: str | None
    code: str
    reason: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    sha256 TEXT PRIMARY KEY, name TEXT, version TEXT, size INTEGER NOT NULL, added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_ROLES = ("active", "previous", "candidate")


class ModelCache:
    """Blocking file and SQLite I/O: call it from a worker thread, not the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models_dir = root / "models"
        self.staging_dir = root / "staging"
        self._db_path = root / "state.sqlite"

    @classmethod
    def open(cls, root: Path) -> ModelCache:
        cache = cls(root)
        try:
            cache.models_dir.mkdir(parents=True, exist_ok=True)
            cache.staging_dir.mkdir(parents=True, exist_ok=True)
            with closing(cache._connect()) as db, db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise ModelUpdateError(
                UpdateErrorCode.CACHE_UNAVAILABLE, f"model cache {root} is not usable: {e}"
            ) from e
        return cache

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db_path, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    # -- files ------------------------------------------------------------------------------

    def staging_path(self, sha256: str) -> Path:
        return self.staging_dir / f"{sha256}.part"

    def model_path(self, sha256: str) -> Path:
        return self.models_dir / f"{sha256}.onnx"

    def admit(self, staged: Path, sha256: str, name: str | None, version: str | None) -> Path:
        """Moves a verified staged file into the cache (an atomic rename) and records it."""
        path = self.model_path(sha256)
        with staged.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(staged, path)
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ'))",
                (sha256, name, version, path.stat().st_size),
            )
        return path

    def verified_path(self, sha256: str) -> Path | None:
        """The cached file if its content still has this digest; a corrupted one is removed."""
        path = self.model_path(sha256)
        if not path.is_file():
            return None
        actual = file_sha256(path)
        if actual != sha256:
            log.error(
                "cached model %s is corrupted (its sha256 is now %s): removed", sha256, actual
            )
            self.forget(sha256)
            raise ModelUpdateError(
                UpdateErrorCode.CACHE_CORRUPT,
                f"cached model {sha256[:12]} no longer matches its sha256; it was removed",
            )
        return path

    def has(self, sha256: str) -> bool:
        return self.model_path(sha256).is_file()

    def forget(self, sha256: str) -> None:
        self.model_path(sha256).unlink(missing_ok=True)
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM models WHERE sha256 = ?", (sha256,))
            for role in _ROLES:
                db.execute("DELETE FROM state WHERE key = ? AND value = ?", (role, sha256))

    def describe(self, sha256: str) -> CachedModel | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM models WHERE sha256 = ?", (sha256,)).fetchone()
        return CachedModel(*row) if row else None

    def entries(self) -> list[CachedModel]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM models ORDER BY added_at").fetchall()
        return [CachedModel(*row) for row in rows]

    # -- roles ------------------------------------------------------------------------------

    def role(self, role: str) -> str | None:
        return self._get(role)

    def set_roles(self, **roles: str | None) -> None:
        """Sets several roles in one transaction (None clears one), then prunes the cache."""
        with closing(self._connect()) as db, db:
            for role, sha in roles.items():
                if role not in _ROLES:
                    raise ValueError(f"unknown role {role!r}")
                if sha is None:
                    db.execute("DELETE FROM state WHERE key = ?", (role,))
                else:
                    db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (role, sha))
        self.prune()

    def prune(self) -> None:
        """Keeps the models that hold a role and removes the rest, files and records."""
        keep = {sha for sha in (self._get(r) for r in _ROLES) if sha}
        for entry in self.entries():
            if entry.sha256 not in keep:
                log.info("model cache: removing %s (no longer active or previous)", entry.sha256)
                self.forget(entry.sha256)
        for path in self.models_dir.glob("*.onnx"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)
        for path in self.staging_dir.glob("*.part"):
            if path.stem not in keep and path.stem != self._get("downloading"):
                path.unlink(missing_ok=True)

    # -- facts that outlive the process -----------------------------------------------------

    def set_candidate(self, sha256: str | None, desired_version: int | None = None) -> None:
        """Marks the model being loaded or on probation; a mark left by a dead process is how
        the next start knows that this model took the module down."""
        self._put("candidate_version", desired_version)
        self.set_roles(candidate=sha256)

    def candidate_version(self) -> int | None:
        text = self._get("candidate_version")
        return int(text) if text else None

    def set_downloading(self, sha256: str | None) -> None:
        self._put("downloading", sha256)

    def failure(self) -> Failure | None:
        text = self._get("failure")
        return Failure(**json.loads(text)) if text else None

    def set_failure(self, failure: Failure | None) -> None:
        self._put("failure", json.dumps(asdict(failure)) if failure else None)

    def _get(self, key: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _put(self, key: str, value: Any) -> None:
        with closing(self._connect()) as db, db:
            if value is None:
                db.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, str(value)))
