"""The hub's state on disk: one SQLite database, the one home of its schema.

Every table holds JSON documents under a key: the stores above keep their documents in memory
(queries and target conditions scan them) and write each change through before it returns,
so a restarted hub (a new process on the same state directory) finds what the last one held:
identities and keys, device and module twins with their versions, configurations, which
deployments each device has had applied, and where the simulated devices listened.

SQLite in WAL mode with ``synchronous=NORMAL``: durable across a crash of the process; only a
power loss can drop the last transactions, which is acceptable for a simulator. The writes are
small and run on the event loop; ``transaction`` groups many (a deployment reaching a hundred
devices) into one commit.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import SimulatorError
from simulator.jsondoc import JsonObject

DATABASE_FILE = "hub.sqlite"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Table:
    name: str
    keys: tuple[str, ...]


META = Table("meta", ("name",))
DEVICES = Table("devices", ("device_id",))
MODULES = Table("modules", ("device_id", "module_id"))
# A device twin is stored under module_id "" (module ids are never empty).
TWINS = Table("twins", ("device_id", "module_id"))
CONFIGURATIONS = Table("configurations", ("configuration_id",))
# Per device: the deployments applied and targeted, in the order they were layered.
DEPLOYMENT_STATE = Table("deployment_state", ("device_id",))
# Per simulated edge device: the loopback address its edgeHub listens on.
EDGE_ENDPOINTS = Table("edge_endpoints", ("device_id",))
TABLES = (META, DEVICES, MODULES, TWINS, CONFIGURATIONS, DEPLOYMENT_STATE, EDGE_ENDPOINTS)

Key = tuple[str, ...]


class HubDatabaseError(SimulatorError):
    """The state directory holds a database this simulator cannot use."""


def _create_statement(table: Table) -> str:
    columns = ", ".join(f"{key} TEXT NOT NULL" for key in table.keys)
    primary = ", ".join(table.keys)
    return (
        f"CREATE TABLE IF NOT EXISTS {table.name} "
        f"({columns}, doc TEXT NOT NULL, PRIMARY KEY ({primary}))"
    )


class HubDatabase:
    """``open`` does the I/O; ``created`` tells a fresh hub from a restarted one."""

    def __init__(self, db: sqlite3.Connection, path: Path, created: bool) -> None:
        self._db = db
        self.path = path
        self.created = created
        self._depth = 0

    @classmethod
    def open(cls, state_dir: Path) -> HubDatabase:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DATABASE_FILE
        return cls._connect(path, created=not path.exists())

    @classmethod
    def in_memory(cls) -> HubDatabase:
        """A database that is never written to disk (unit tests, throw-away hubs)."""
        return cls._connect(Path(":memory:"), created=True)

    @classmethod
    def _connect(cls, path: Path, *, created: bool) -> HubDatabase:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            if str(path) != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA busy_timeout=5000")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise HubDatabaseError(
                    f"{path} has schema version {version}; this simulator reads "
                    f"{SCHEMA_VERSION}: use another state directory"
                )
            for table in TABLES:
                db.execute(_create_statement(table))
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, HubDatabaseError) as e:
            db.close()
            if isinstance(e, HubDatabaseError):
                raise
            raise HubDatabaseError(f"cannot open {path}: {e}") from e
        return cls(db, path, created)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit; nested uses join the outer one."""
        if self._depth == 0:
            self._db.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def put(self, table: Table, key: Key, doc: JsonObject) -> None:
        _check_key(table, key)
        names = ", ".join((*table.keys, "doc"))
        marks = ", ".join("?" for _ in range(len(table.keys) + 1))
        self._db.execute(
            f"INSERT OR REPLACE INTO {table.name} ({names}) VALUES ({marks})",
            (*key, json.dumps(doc, separators=(",", ":"))),
        )

    def delete(self, table: Table, key: Key) -> None:
        _check_key(table, key)
        where = " AND ".join(f"{k} = ?" for k in table.keys)
        self._db.execute(f"DELETE FROM {table.name} WHERE {where}", key)

    def delete_where(self, table: Table, first_key: str) -> None:
        """Every row whose first key column is ``first_key`` (a device's modules or twins)."""
        self._db.execute(f"DELETE FROM {table.name} WHERE {table.keys[0]} = ?", (first_key,))

    def load(self, table: Table) -> dict[Key, JsonObject]:
        columns = ", ".join((*table.keys, "doc"))
        rows = self._db.execute(f"SELECT {columns} FROM {table.name}").fetchall()
        loaded: dict[Key, JsonObject] = {}
        for row in rows:
            doc = json.loads(row[-1])
            if not isinstance(doc, dict):
                raise HubDatabaseError(f"{self.path}: a {table.name} row is not a JSON object")
            loaded[tuple(str(part) for part in row[:-1])] = doc
        return loaded

    def get(self, table: Table, key: Key) -> JsonObject | None:
        _check_key(table, key)
        where = " AND ".join(f"{k} = ?" for k in table.keys)
        row = self._db.execute(f"SELECT doc FROM {table.name} WHERE {where}", key).fetchone()
        if row is None:
            return None
        doc = json.loads(row[0])
        return doc if isinstance(doc, dict) else None

    # -- small named values ---------------------------------------------------------------

    def meta(self, name: str) -> JsonObject | None:
        return self.get(META, (name,))

    def set_meta(self, name: str, doc: JsonObject) -> None:
        self.put(META, (name,), doc)


def _check_key(table: Table, key: Key) -> None:
    if len(key) != len(table.keys):
        raise ValueError(f"{table.name} rows are keyed by {table.keys}, not {key!r}")
