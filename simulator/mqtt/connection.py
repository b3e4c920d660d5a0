"""One client's network connection: CONNECT, the read loop, and the send loop.

Two tasks per connection. The read task handles packets strictly in order (so a QoS 1
PUBACK follows the hub's ``on_publish``) and answers control packets itself. The send task
drains the session's queue within the QoS 1 window. Both write whole packets with one
``write()`` and then wait for ``drain()`` under ``write_timeout_s``: a client that stops
reading stalls only itself and is dropped, and the server never buffers without bound.

Everything that ends a connection ends in ``run()``'s ``finally``, so the hub hears exactly
one ``on_disconnected`` per accepted connection, and no failure escapes to other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Protocol

from simulator.mqtt.codec import decode_body, decode_fixed_header, encode
from simulator.mqtt.errors import (
    MalformedPacketError,
    PublishRejectedError,
    UnsupportedProtocolError,
)
from simulator.mqtt.hooks import BrokerHooks, ClientInfo
from simulator.mqtt.limits import Counter, Limits, ServerStats
from simulator.mqtt.packets import (
    SUBACK_FAILURE,
    Connack,
    ConnackCode,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from simulator.mqtt.session import Session
from simulator.mqtt.topics import is_valid_topic_filter

logger = logging.getLogger(__name__)

_CLOSE_WAIT_S = 1.0  # how long a polite close may take before the transport is aborted

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class SessionRegistry(Protocol):
    async def attach(self, connection: Connection, connect: Connect) -> tuple[Session, bool]:
        """Bind an authenticated connection to its session; returns (session, present)."""
        ...

    async def detach(self, connection: Connection) -> None: ...


class _CloseError(Exception):
    """Ends the connection on purpose; ``counter`` names the statistic it counts as."""

    def __init__(self, reason: str, counter: Counter | None = None) -> None:
        super().__init__(reason)
        self.counter = counter


class Connection:
    def __init__(
        self,
        *,
        connection_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hooks: BrokerHooks,
        registry: SessionRegistry,
        limits: Limits,
        stats: ServerStats,
    ) -> None:
        self.connection_id = connection_id
        self._reader = reader
        self._writer = writer
        self._hooks = hooks
        self._registry = registry
        self._limits = limits
        self._stats = stats
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.info: ClientInfo | None = None  # set once CONNECT was accepted
        self.session: Session | None = None  # set once attached to the registry
        self.closed = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._socket = writer.get_extra_info("socket")

    def abort(self) -> None:
        """Drop the network connection now; ``run()`` then winds down and sets ``closed``."""
        # Cancelling the sender first keeps it from taking more messages off the session
        # queue for a connection that is already gone.
        if self._sender is not None:
            self._sender.cancel()
        self._writer.transport.abort()

    async def run(self) -> None:
        try:
            await self._serve()
        except _CloseError as e:
            self._count_close(e)
        except UnsupportedProtocolError as e:
            logger.info("%s: %s", self.peer, e)
            self._stats.connects_refused += 1
        except MalformedPacketError as e:
            logger.info("%s: malformed packet: %s", self.peer, e)
            self._stats.malformed_packets += 1
        except PublishRejectedError as e:
            logger.info("%s: publish rejected: %s", self.peer, e)
            self._stats.rejected_publishes += 1
        except (EOFError, OSError) as e:
            # The peer vanished (reset, EOF mid-packet, TLS error): nothing to answer.
            logger.debug("%s: connection lost: %r", self.peer, e)
        except Exception:
            logger.exception("%s: closing after an unexpected error", self.peer)
            self._stats.internal_errors += 1
        finally:
            await self._teardown()

    def _count_close(self, close: _CloseError) -> None:
        logger.info("%s: closing: %s", self.peer, close)
        if close.counter is not None:
            self._stats.bump(close.counter)

    # ------------------------------------------------------------------------- connect

    async def _serve(self) -> None:
        connect = await self._read_connect()
        code = self._admit(connect)
        if code is not ConnackCode.ACCEPTED:
            self._stats.connects_refused += 1
            if code in (ConnackCode.BAD_CREDENTIALS, ConnackCode.NOT_AUTHORIZED):
                self._stats.auth_failures += 1
            await self._send(Connack(False, code))
            return
        self.info = ClientInfo(connect.client_id, connect.username, self.peer, self.connection_id)
        self.session, present = await self._registry.attach(self, connect)
        self._stats.connects_accepted += 1
        await self._send(Connack(present, ConnackCode.ACCEPTED))
        self._sender = asyncio.create_task(
            self._send_loop(self.session), name=f"mqtt-send-{self.connection_id}"
        )
        await self._hooks.on_connected(self.info, present)
        # [MQTT-3.1.2-24]: silence for 1.5 keepalive periods ends the connection; 0 disables it.
        idle_timeout_s = connect.keepalive_s * 1.5 if connect.keepalive_s else None
        while not isinstance(packet := await self._read_packet(idle_timeout_s), Disconnect):
            await self._handle(packet, self.info, self.session)

    async def _read_connect(self) -> Connect:
        try:
            async with asyncio.timeout(self._limits.connect_timeout_s):
                packet = await self._read_packet(None)
        except TimeoutError:
            raise _CloseError("no CONNECT in time", "connect_timeouts") from None
        except UnsupportedProtocolError:
            await self._send(Connack(False, ConnackCode.BAD_PROTOCOL))
            raise
        if not isinstance(packet, Connect):
            raise _CloseError(f"{type(packet).__name__} before CONNECT", "protocol_errors")
        return packet

    def _admit(self, connect: Connect) -> ConnackCode:
        # IoT Hub identifies every client by its id ({device}/{module}), so an empty id,
        # which MQTT would let the server replace with its own, is refused.
        if not connect.client_id:
            return ConnackCode.ID_REJECTED
        return self._hooks.authenticate(connect.client_id, connect.username, connect.password)

    # --------------------------------------------------------------------------- reading

    async def _read_packet(self, idle_timeout_s: float | None) -> Packet:
        try:
            async with asyncio.timeout(idle_timeout_s):
                head = await self._reader.readexactly(2)  # no packet is shorter
        except TimeoutError:
            raise _CloseError("keepalive expired", "keepalive_timeouts") from None
        try:
            async with asyncio.timeout(self._limits.packet_timeout_s):
                while (header := decode_fixed_header(head)) is None:
                    head += await self._reader.readexactly(1)
                # Refused on the header alone: the body of an oversized packet is never read.
                if header.remaining_length > self._limits.max_packet_bytes:
                    raise _CloseError(
                        f"{header.packet_type.name} of {header.remaining_length} bytes",
                        "oversized_packets",
                    )
                body = await self._reader.readexactly(header.remaining_length)
        except TimeoutError:
            raise _CloseError("packet not completed in time", "protocol_errors") from None
        self._ack_promptly()
        return decode_body(header, body)

    def _ack_promptly(self) -> None:
        # paho (inside the SDK) does not set TCP_NODELAY, and Linux delays ACKs by up to
        # 40 ms: a module's PUBLISH right after its PUBACK then sits in Nagle's buffer until
        # our delayed ACK. Re-arming quick ACK after each packet keeps sends prompt.
        if _TCP_QUICKACK is None or self._socket is None:
            return
        with contextlib.suppress(OSError):
            self._socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    async def _handle(self, packet: Packet, info: ClientInfo, session: Session) -> None:
        match packet:
            case Publish():
                await self._receive_publish(packet, info)
            case Puback(packet_id=packet_id):
                if not session.acknowledge(packet_id):
                    logger.debug("%s: PUBACK for unknown packet id %d", self.peer, packet_id)
            case Subscribe():
                await self._subscribe(packet, info, session)
            case Unsubscribe(packet_id=packet_id, topic_filters=filters):
                for topic_filter in filters:
                    session.unsubscribe(topic_filter)
                await self._send(Unsuback(packet_id))
            case Pingreq():
                await self._send(Pingresp())
            case _:
                raise _CloseError(f"{type(packet).__name__} from a client", "protocol_errors")

    async def _receive_publish(self, packet: Publish, info: ClientInfo) -> None:
        if packet.qos == 2:
            raise _CloseError("QoS 2 PUBLISH is not supported", "protocol_errors")
        if len(packet.payload) > self._limits.max_payload_bytes:
            raise _CloseError(f"payload of {len(packet.payload)} bytes", "oversized_packets")
        self._stats.messages_in += 1
        await self._hooks.on_publish(info, packet.topic, packet.payload, packet.qos)
        if packet.packet_id is not None:
            await self._send(Puback(packet.packet_id))

    async def _subscribe(self, packet: Subscribe, info: ClientInfo, session: Session) -> None:
        codes: list[int] = []
        granted_filters: list[str] = []
        for topic_filter, requested_qos in packet.requests:
            if not self._may_subscribe(topic_filter, info, session):
                codes.append(SUBACK_FAILURE)
                continue
            # QoS 2 is not offered, so a QoS 2 request is granted QoS 1 [MQTT-3.8.4-6].
            granted = min(requested_qos, 1)
            session.subscribe(topic_filter, granted)
            codes.append(granted)
            granted_filters.append(topic_filter)
        await self._send(Suback(packet.packet_id, tuple(codes)))
        for topic_filter in granted_filters:
            await self._hooks.on_subscribed(info, topic_filter)

    def _may_subscribe(self, topic_filter: str, info: ClientInfo, session: Session) -> bool:
        if not is_valid_topic_filter(topic_filter):
            return False
        is_new = topic_filter not in session.subscriptions
        if is_new and len(session.subscriptions) >= self._limits.max_subscriptions:
            return False
        return self._hooks.may_subscribe(info, topic_filter)

    # --------------------------------------------------------------------------- writing

    async def _send(self, packet: Packet) -> None:
        self._writer.write(encode(packet))
        try:
            async with asyncio.timeout(self._limits.write_timeout_s):
                await self._writer.drain()
        except TimeoutError:
            raise _CloseError("client stopped reading", "slow_readers") from None

    async def _send_loop(self, session: Session) -> None:
        try:
            # [MQTT-4.4.0-1]: unacknowledged QoS 1 messages go first, same ids, DUP set.
            for packet_id, held in session.unacknowledged():
                await self._send(Publish(held.topic, held.payload, 1, packet_id, dup=True))
                self._stats.messages_out += 1
            while True:
                message = session.pop_sendable()
                if message is None:
                    await session.wait_for_work()
                    continue
                new_id = session.track(message) if message.qos else None
                await self._send(Publish(message.topic, message.payload, message.qos, new_id))
                self._stats.messages_out += 1
        except _CloseError as e:
            self._count_close(e)
        except (EOFError, OSError) as e:
            logger.debug("%s: send failed: %r", self.peer, e)
        except Exception:
            logger.exception("%s: send loop failed", self.peer)
            self._stats.internal_errors += 1
        # Whatever stopped sending also ends the connection; the read task then winds down.
        self._writer.transport.abort()

    # -------------------------------------------------------------------------- teardown

    async def _teardown(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait([self._sender])
        await self._close_transport()
        if self.session is not None:
            try:
                await self._registry.detach(self)
            except Exception:
                logger.exception("%s: detaching the session failed", self.peer)
                self._stats.internal_errors += 1
        self.closed.set()

    async def _close_transport(self) -> None:
        # close() flushes what is buffered (a refusing CONNACK, say) before closing; a peer
        # that does not take it within _CLOSE_WAIT_S is cut off.
        self._writer.close()
        try:
            async with asyncio.timeout(_CLOSE_WAIT_S):
                await self._writer.wait_closed()
        except (TimeoutError, OSError):
            self._writer.transport.abort()
