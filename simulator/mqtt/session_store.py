"""Persistent sessions on disk, so they survive a restart of the simulator, as edgeHub's do.

Why: the IoT SDK connects with ``clean_session=False`` and never subscribes again after a
reconnect. Real edgeHub restores each persistent session's subscriptions when it restarts
(Azure/iotedge PR 5048, written for this SDK) and keeps the messages routed to a module in
its store until the module acknowledges them. A simulator that forgot both would leave a
reconnected module "connected" but deaf: no input messages, twin responses, desired patches
or method calls, and every frame that was routed but not yet acknowledged lost.

Kept per client id: the subscriptions (filter and granted QoS) and every QoS 1 message
queued or in flight, until its PUBACK (or until the session's queue drops it). QoS 0 is never
kept, as MQTT allows. The hub layer also keeps here what it holds for a module that is not
subscribed to its inputs (``hold``): a module that pauses its input, or has not subscribed
yet, must not lose those messages to a restart either. SQLite in WAL mode, in the simulator's state directory; the writes
happen on the event loop, each one small.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL,
    topic_filter TEXT NOT NULL,
    qos INTEGER NOT NULL,
    PRIMARY KEY (client_id, topic_filter)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
"""


@dataclass
class StoredSession:
    subscriptions: dict[str, int] = field(default_factory=dict)
    # (row id, topic, payload) in the order they were queued.
    messages: list[tuple[int, str, bytes]] = field(default_factory=list)


class SessionStore:
    """``open`` does the I/O; every method commits before it returns."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @classmethod
    def open(cls, path: Path) -> SessionStore:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return cls(db)

    def load(self) -> dict[str, StoredSession]:
        sessions: dict[str, StoredSession] = {}
        for (client_id,) in self._db.execute("SELECT client_id FROM sessions"):
            sessions[client_id] = StoredSession()
        for client_id, topic_filter, qos in self._db.execute(
            "SELECT client_id, topic_filter, qos FROM subscriptions"
        ):
            sessions.setdefault(client_id, StoredSession()).subscriptions[topic_filter] = qos
        for row_id, client_id, topic, payload in self._db.execute(
            "SELECT id, client_id, topic, payload FROM messages ORDER BY id"
        ):
            sessions.setdefault(client_id, StoredSession()).messages.append(
                (row_id, topic, bytes(payload))
            )
        return sessions

    def begin(self, client_id: str) -> None:
        """Records that ``client_id`` has a persistent session (``forget`` ends it)."""
        self._db.execute("INSERT OR IGNORE INTO sessions (client_id) VALUES (?)", (client_id,))

    def forget(self, client_id: str) -> None:
        with self._db:
            for table in ("sessions", "subscriptions", "messages"):
                self._db.execute(f"DELETE FROM {table} WHERE client_id = ?", (client_id,))

    def subscribe(self, client_id: str, topic_filter: str, qos: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO subscriptions (client_id, topic_filter, qos) VALUES (?, ?, ?)",
            (client_id, topic_filter, qos),
        )

    def unsubscribe(self, client_id: str, topic_filter: str) -> None:
        self._db.execute(
            "DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
            (client_id, topic_filter),
        )

    def add_message(self, client_id: str, topic: str, payload: bytes) -> int:
        cursor = self._db.execute(
            "INSERT INTO messages (client_id, topic, payload) VALUES (?, ?, ?)",
            (client_id, topic, payload),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def remove_message(self, row_id: int) -> None:
        self._db.execute("DELETE FROM messages WHERE id = ?", (row_id,))

    def hold(self, client_id: str, topic: str, payload: bytes) -> int:
        cursor = self._db.execute(
            "INSERT INTO held (client_id, topic, payload) VALUES (?, ?, ?)",
            (client_id, topic, payload),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def release(self, row_id: int) -> None:
        self._db.execute("DELETE FROM held WHERE id = ?", (row_id,))

    def load_held(self) -> dict[str, list[tuple[int, str, bytes]]]:
        held: dict[str, list[tuple[int, str, bytes]]] = {}
        for row_id, client_id, topic, payload in self._db.execute(
            "SELECT id, client_id, topic, payload FROM held ORDER BY id"
        ):
            held.setdefault(client_id, []).append((row_id, topic, bytes(payload)))
        return held

    def close(self) -> None:
        self._db.close()
