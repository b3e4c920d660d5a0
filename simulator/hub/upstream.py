"""The simulated cloud's inbox: every message routed to ``$upstream``, kept in SQLite.

Stands in for IoT Hub's Event Hubs-compatible endpoint. Each message gets a sequence number
that is never reused (AUTOINCREMENT), so readers resume with ``after_sequence``. The database
runs in WAL mode so a CLI in another process can read, or follow, while the simulator writes.

Followers in the writing process are woken at once by ``append``; followers elsewhere poll.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.messages import Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_at TEXT NOT NULL,
    device_id TEXT NOT NULL,
    module_id TEXT,
    output_name TEXT,
    body BLOB NOT NULL,
    system_properties TEXT NOT NULL,
    properties TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_source ON messages (device_id, module_id, output_name);
"""
_COLUMNS = (
    "seq, enqueued_at, device_id, module_id, output_name, body, system_properties, properties"
)
# Message fields other than body/properties, stored together as one JSON column.
_SYSTEM_FIELDS = tuple(
    f.name for f in dataclasses.fields(Message) if f.name not in ("body", "properties")
)


@dataclass(frozen=True)
class StoredMessage:
    sequence_number: int
    enqueued_time: dt.datetime
    device_id: str
    module_id: str | None
    output_name: str | None
    message: Message

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly view for CLIs: the body as text when it is UTF-8, else base64."""
        try:
            body: dict[str, str] = {"text": self.message.body.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"base64": base64.b64encode(self.message.body).decode("ascii")}
        return {
            "sequenceNumber": self.sequence_number,
            "enqueuedTimeUtc": self.enqueued_time.isoformat(),
            "deviceId": self.device_id,
            "moduleId": self.module_id,
            "outputName": self.output_name,
            "systemProperties": self.message.system_properties(),
            "properties": dict(self.message.properties),
            "body": body,
        }


@dataclass(frozen=True)
class MessageFilter:
    device_id: str | None = None
    module_id: str | None = None
    output_name: str | None = None


class UpstreamStore:
    """``__init__`` only assigns; open a store with :meth:`open`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        # One connection shared by the loop and worker threads; sqlite3 objects are not
        # safe for concurrent use, so every statement runs under this lock.
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @classmethod
    def open(cls, path: Path) -> UpstreamStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across process crashes in WAL mode; only power loss can drop
            # the last transactions, which is acceptable for a simulator.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(
        self,
        message: Message,
        *,
        device_id: str,
        module_id: str | None,
        output_name: str | None,
        now: dt.datetime | None = None,
    ) -> StoredMessage:
        enqueued = now or dt.datetime.now(dt.UTC)
        system = {name: getattr(message, name) for name in _SYSTEM_FIELDS}
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO messages (enqueued_at, device_id, module_id, output_name, body,"
                " system_properties, properties) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    enqueued.isoformat(),
                    device_id,
                    module_id,
                    output_name,
                    message.body,
                    json.dumps(system),
                    json.dumps(dict(message.properties)),
                ),
            )
            sequence = cursor.lastrowid
        assert sequence is not None
        self._wake_followers()
        return StoredMessage(sequence, enqueued, device_id, module_id, output_name, message)

    def read(
        self,
        *,
        after_sequence: int = 0,
        where: MessageFilter | None = None,
        limit: int | None = None,
    ) -> list[StoredMessage]:
        """Messages with a sequence number above ``after_sequence``, oldest first."""
        return self._select(after_sequence, where, limit, newest_first=False)

    def newest(self, count: int, where: MessageFilter | None = None) -> list[StoredMessage]:
        """The newest ``count`` matching messages, oldest first."""
        return self._select(0, where, count, newest_first=True)[::-1]

    def _select(
        self,
        after_sequence: int,
        where: MessageFilter | None,
        limit: int | None,
        newest_first: bool,
    ) -> list[StoredMessage]:
        sql = f"SELECT {_COLUMNS} FROM messages WHERE seq > ?"
        args: list[object] = [after_sequence]
        chosen = where or MessageFilter()
        for column, value in (
            ("device_id", chosen.device_id),
            ("module_id", chosen.module_id),
            ("output_name", chosen.output_name),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_row_to_stored(row) for row in rows]

    def last_sequence(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()
        return int(row[0])

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
        return int(row[0])

    async def follow(
        self,
        *,
        after_sequence: int | None = None,
        where: MessageFilter | None = None,
        poll_interval_s: float = 0.5,
    ) -> AsyncIterator[StoredMessage]:
        """Yield matching messages as they arrive, forever (cancel or break to stop).

        ``after_sequence`` None starts after the newest message already stored (a tail);
        0 replays everything first.
        """
        last = self.last_sequence() if after_sequence is None else after_sequence
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        self._waiters.add(waiter)
        try:
            while True:
                waiter[1].clear()
                batch = await asyncio.to_thread(
                    self.read, after_sequence=last, where=where, limit=500
                )
                for stored in batch:
                    last = stored.sequence_number
                    yield stored
                if batch:
                    continue
                # Poll on timeout too: a writer in another process cannot wake us.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter[1].wait(), poll_interval_s)
        finally:
            self._waiters.discard(waiter)

    def _wake_followers(self) -> None:
        for loop, event in list(self._waiters):
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


def _row_to_stored(row: tuple[Any, ...]) -> StoredMessage:
    seq, enqueued_at, device_id, module_id, output_name, body, system_json, props_json = row
    system = json.loads(system_json)
    message = Message(
        body=bytes(body),
        properties=json.loads(props_json),
        **{name: system.get(name) for name in _SYSTEM_FIELDS},
    )
    return StoredMessage(
        sequence_number=int(seq),
        enqueued_time=dt.datetime.fromisoformat(enqueued_at),
        device_id=device_id,
        module_id=module_id,
        output_name=output_name,
        message=message,
    )
