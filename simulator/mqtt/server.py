"""The MQTT server: listening, the client-id registry (sessions, takeover), and delivery."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from simulator.mqtt.connection import Connection
from simulator.mqtt.hooks import BrokerHooks
from simulator.mqtt.limits import Limits, ServerStats
from simulator.mqtt.packets import Connect
from simulator.mqtt.session import DeliveryResult, OutboundMessage, Session
from simulator.mqtt.session_store import SessionStore
from simulator.mqtt.topics import is_valid_topic_name

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 5.0


@dataclass(slots=True)
class _IdLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class MqttServer:
    """MQTT 3.1.1 server whose routing decisions belong to ``hooks`` (see the package doc)."""

    def __init__(
        self,
        hooks: BrokerHooks,
        ssl_context: ssl.SSLContext | None,
        limits: Limits | None = None,
        store: SessionStore | None = None,
    ) -> None:
        """With a ``store``, persistent sessions are read from it and written through to it,
        so they survive a restart (``session_store``)."""
        self._hooks = hooks
        self._ssl_context = ssl_context
        self._limits = limits if limits is not None else Limits()
        self._store = store
        self._stats = ServerStats()
        self._listener: asyncio.Server | None = None
        self._connections: dict[Connection, asyncio.Task[None]] = {}
        self._live: dict[str, Connection] = {}  # client id -> its one accepted connection
        self._sessions: dict[str, Session] = {}
        if store is not None:
            self._sessions = {
                client_id: Session.restored(client_id, stored, self._limits, store)
                for client_id, stored in store.load().items()
            }
        self._id_locks: dict[str, _IdLock] = {}
        self._connection_ids = itertools.count(1)

    # ------------------------------------------------------------------------ lifecycle

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host`` (a loopback address) and ``port`` (0 picks a free one)."""
        if self._listener is not None:
            raise RuntimeError("the server is already started")
        # The simulator never listens beyond this machine: its credentials are throwaway.
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address")
        handshake_timeout_s = self._limits.connect_timeout_s if self._ssl_context else None
        self._listener = await asyncio.start_server(
            self._accept,
            host,
            port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=handshake_timeout_s,
        )

    async def stop(self) -> None:
        """Close the listener and every connection. Sessions stay for a later ``start()``."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for connection in list(self._connections):
            connection.abort()
        tasks = list(self._connections.values())
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_STOP_GRACE_S)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)

    @property
    def port(self) -> int:
        if self._listener is None or not self._listener.sockets:
            raise RuntimeError("the server is not started")
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def stats(self) -> ServerStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._stats.connections += 1
        if len(self._connections) >= self._limits.max_clients:
            self._stats.over_capacity += 1
            writer.transport.abort()
            return
        connection = Connection(
            connection_id=next(self._connection_ids),
            reader=reader,
            writer=writer,
            hooks=self._hooks,
            registry=self,
            limits=self._limits,
            stats=self._stats,
        )
        task = asyncio.current_task()
        assert task is not None  # start_server runs each client in its own task
        self._connections[connection] = task
        try:
            await connection.run()
        finally:
            del self._connections[connection]

    # ------------------------------------------------------------- registry (Connection)

    @contextlib.asynccontextmanager
    async def _client_id_lock(self, client_id: str) -> AsyncIterator[None]:
        # Serialises takeovers of one client id without making other ids wait.
        entry = self._id_locks.setdefault(client_id, _IdLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._id_locks[client_id]

    async def attach(self, connection: Connection, connect: Connect) -> tuple[Session, bool]:
        client_id = connect.client_id
        async with self._client_id_lock(client_id):
            previous = self._live.get(client_id)
            if previous is not None:
                # [MQTT-3.1.4-2]: the newer connection wins; the hub hears the old one's
                # on_disconnected before the new one's on_connected.
                self._stats.takeovers += 1
                previous.abort()
                try:
                    async with asyncio.timeout(self._limits.takeover_timeout_s):
                        await previous.closed.wait()
                except TimeoutError:
                    logger.warning("%s: replaced connection is slow to close", client_id)
            session = self._sessions.get(client_id)
            present = session is not None and session.persistent and not connect.clean_session
            if session is None or not present:
                if self._store is not None:
                    self._store.forget(client_id)
                session = Session(client_id, not connect.clean_session, self._limits, self._store)
                session.begin()
                self._sessions[client_id] = session
            # No await after this point: registration is atomic with respect to detach().
            self._live[client_id] = connection
            return session, present

    async def detach(self, connection: Connection) -> None:
        info, session = connection.info, connection.session
        if info is None or session is None:
            return
        if self._live.get(info.client_id) is connection:
            del self._live[info.client_id]
            if session.persistent:
                session.forget_qos0()
            elif self._sessions.get(info.client_id) is session:
                del self._sessions[info.client_id]
        await self._hooks.on_disconnected(info)

    # ----------------------------------------------------------------------- hub's API

    async def deliver(
        self, client_id: str, topic: str, payload: bytes, qos: int = 1
    ) -> DeliveryResult:
        """Send ``payload`` on ``topic`` to one client's session, if a filter there matches.

        The QoS is the lower of ``qos`` and the matching subscription's grant. A connected
        client gets it from its send queue; an offline persistent session keeps QoS 1
        messages (bounded, drop-oldest, counted in ``stats.dropped_queued``).
        """
        if qos not in (0, 1):
            raise ValueError(f"QoS {qos} is not 0 or 1")
        if not is_valid_topic_name(topic):
            raise ValueError(f"{topic!r} is not a valid topic name")
        session = self._sessions.get(client_id)
        if session is None:
            return DeliveryResult.NO_SESSION
        granted = session.granted_qos(topic)
        if granted is None:
            return DeliveryResult.NO_SUBSCRIPTION
        effective_qos = min(qos, granted)
        connected = client_id in self._live
        if not connected and not effective_qos:
            return DeliveryResult.DROPPED
        self._stats.dropped_queued += session.enqueue(
            OutboundMessage(topic, payload, effective_qos)
        )
        return DeliveryResult.DELIVERED if connected else DeliveryResult.QUEUED

    def is_connected(self, client_id: str) -> bool:
        return client_id in self._live

    def subscriptions(self, client_id: str) -> frozenset[str]:
        session = self._sessions.get(client_id)
        return frozenset(session.subscriptions) if session is not None else frozenset()

    async def disconnect(self, client_id: str) -> None:
        """Drop the client's connection from the server side (its session stays)."""
        connection = self._live.get(client_id)
        if connection is None:
            return
        connection.abort()
        await connection.closed.wait()
