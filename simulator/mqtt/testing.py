"""Test doubles for code that runs against ``MqttServer`` (this package's tests, the hub's).

- ``RecordingHooks``: a ``BrokerHooks`` that checks passwords from a table and records calls.
- ``RawClient``: an asyncio MQTT client built on the codec, able to send any bytes at all.
- ``PahoPeer``: paho-mqtt 1.6.1 (the client inside azure-iot-device) on its own thread.
- ``throwaway_tls``: a fresh CA and server certificate for one loopback address.
- ``random_loopback_host``: a 127.x.y.z address, so parallel servers never share a port.
- ``eventually``: poll a condition without blocking the event loop the server runs on.

paho runs blocking sockets on its own thread, so tests never call its blocking API from the
event loop: that loop also runs the server, which would then never answer. The same holds for
azure-iot-device's aio client: its handler setters (``on_message_received = ...``) block the
calling thread until the subscription is acknowledged, so set them via ``asyncio.to_thread``
when the server shares the test's loop.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import random
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator.mqtt.codec import decode, encode
from simulator.mqtt.errors import PublishRejectedError
from simulator.mqtt.hooks import ClientInfo
from simulator.mqtt.packets import Connack, ConnackCode, Connect, Packet


async def eventually(
    condition: Callable[[], object], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Wait until ``condition()`` is truthy; fail the test after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(0.01)


def random_loopback_host() -> str:
    return f"127.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(2, 255)}"


@dataclass(frozen=True, slots=True)
class Published:
    client: ClientInfo
    topic: str
    payload: bytes
    qos: int


@dataclass
class RecordingHooks:
    """Accepts ``passwords[client_id]`` (every client when ``passwords`` is None)."""

    passwords: Mapping[str, bytes] | None = None
    denied_filters: set[str] = field(default_factory=set)
    rejected_topics: set[str] = field(default_factory=set)
    # on_publish waits for this gate, so a test can hold a PUBACK back.
    publish_gate: asyncio.Event = field(default_factory=asyncio.Event)
    connected: list[tuple[ClientInfo, bool]] = field(default_factory=list)
    disconnected: list[ClientInfo] = field(default_factory=list)
    subscribed: list[tuple[ClientInfo, str]] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # "connected:<id>", ... in call order
    credentials: list[tuple[str, str | None, bytes | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.publish_gate.set()

    def authenticate(
        self, client_id: str, username: str | None, password: bytes | None
    ) -> ConnackCode:
        self.credentials.append((client_id, username, password))
        if self.passwords is None:
            return ConnackCode.ACCEPTED
        if client_id not in self.passwords:
            return ConnackCode.NOT_AUTHORIZED
        if password != self.passwords[client_id]:
            return ConnackCode.BAD_CREDENTIALS
        return ConnackCode.ACCEPTED

    def may_subscribe(self, client: ClientInfo, topic_filter: str) -> bool:
        return topic_filter not in self.denied_filters

    async def on_connected(self, client: ClientInfo, session_present: bool) -> None:
        self.connected.append((client, session_present))
        self.events.append(f"connected:{client.connection_id}")

    async def on_disconnected(self, client: ClientInfo) -> None:
        self.disconnected.append(client)
        self.events.append(f"disconnected:{client.connection_id}")

    async def on_subscribed(self, client: ClientInfo, topic_filter: str) -> None:
        self.subscribed.append((client, topic_filter))

    async def on_publish(self, client: ClientInfo, topic: str, payload: bytes, qos: int) -> None:
        await self.publish_gate.wait()
        if topic in self.rejected_topics:
            raise PublishRejectedError(topic)
        self.published.append(Published(client, topic, payload, qos))


class RawClient:
    """A hand-driven MQTT connection: send packets or arbitrary bytes, read packets back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()

    @classmethod
    async def open(
        cls, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> RawClient:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
        )
        return cls(reader, writer)

    async def send(self, packet: Packet | bytes) -> None:
        self._writer.write(packet if isinstance(packet, bytes) else encode(packet))
        await self._writer.drain()

    async def receive(self, timeout_s: float = 5.0) -> Packet:
        """The next packet; EOFError if the server closed the connection first."""
        async with asyncio.timeout(timeout_s):
            while (decoded := decode(self._buffer)) is None:
                chunk = await self._reader.read(65_536)
                if not chunk:
                    raise EOFError("the server closed the connection")
                self._buffer += chunk
        packet, used = decoded
        del self._buffer[:used]
        return packet

    async def connect(
        self,
        client_id: str,
        *,
        username: str | None = None,
        password: bytes | None = None,
        clean_session: bool = True,
        keepalive_s: int = 60,
    ) -> Connack:
        await self.send(Connect(client_id, clean_session, keepalive_s, username, password))
        reply = await self.receive()
        assert isinstance(reply, Connack), reply
        return reply

    async def closed_by_server(self, timeout_s: float = 5.0) -> bool:
        """Read (and discard) until the server closes; False if it is still open at the end."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self._reader.read(65_536):
                    pass
        except TimeoutError:
            return False
        except OSError:  # a reset or a TLS error still means the server let go
            pass
        return True

    def vanish(self) -> None:
        """Drop the connection without a DISCONNECT or TLS close, like a crashed client."""
        self._writer.transport.abort()

    async def close(self) -> None:
        self._writer.close()
        try:
            async with asyncio.timeout(2.0):
                await self._writer.wait_closed()
        except (TimeoutError, OSError):
            self._writer.transport.abort()


class PahoPeer:
    """paho-mqtt 1.6.1 on its own thread, recording what it sees. It never auto-reconnects."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        tls: ssl.SSLContext,
        *,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = False,
        keepalive_s: int = 60,
    ) -> None:
        self.client: Any = paho.Client(
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        self.client.tls_set_context(tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        self._address = (host, port, keepalive_s)
        # Appended on paho's thread, read on the test's: list.append is atomic in CPython.
        self.connacks: list[tuple[int, bool]] = []  # (return code, session present)
        self.disconnects: list[int] = []
        self.messages: list[tuple[str, bytes, int, bool]] = []  # topic, payload, qos, dup
        self.completed: set[int] = set()  # mids of our publishes that finished (PUBACK)
        self.subacks: dict[int, tuple[int, ...]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, rc: self.disconnects.append(rc)
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, m.qos, bool(m.dup))
        )
        self.client.on_publish = lambda c, u, mid: self.completed.add(mid)
        self.client.on_subscribe = lambda c, u, mid, granted: self.subacks.update(
            {mid: tuple(granted)}
        )

    def _on_connect(self, client: Any, userdata: Any, flags: dict[str, int], rc: int) -> None:
        self.connacks.append((rc, bool(flags.get("session present"))))

    async def start(self, timeout_s: float = 5.0) -> tuple[int, bool]:
        """Connect on paho's thread; return the CONNACK (return code, session present)."""
        host, port, keepalive_s = self._address
        self.client.connect_async(host, port, keepalive_s)
        self.client.loop_start()
        await eventually(lambda: self.connacks, timeout_s, "CONNACK at paho")
        return self.connacks[-1]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        info = self.client.publish(topic, payload, qos)
        return int(info.mid)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> tuple[int, ...]:
        _, mid = self.client.subscribe(topic_filter, qos)
        await eventually(lambda: mid in self.subacks, what=f"SUBACK for {topic_filter}")
        return self.subacks[mid]

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@dataclass(frozen=True, slots=True)
class ThrowawayTls:
    ca_pem: str
    server_context: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        """Trusts only the throwaway CA, with hostname (IP SAN) checking as the SDK does."""
        context = ssl.create_default_context(cadata=self.ca_pem)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def throwaway_tls(host: str) -> ThrowawayTls:
    """A new CA and a server certificate for ``host`` (an IP address), valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mqtt test CA")])
    ca_cert = (
        _certificate_builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    server_cert = (
        _certificate_builder(server_name, ca_name, server_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads only files; they live just long enough to be loaded.
    with tempfile.TemporaryDirectory() as directory:
        chain, key = Path(directory, "chain.pem"), Path(directory, "key.pem")
        chain.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(chain, key)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return ThrowawayTls(ca_pem, context)


def _certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
