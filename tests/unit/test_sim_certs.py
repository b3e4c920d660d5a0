"""The local CA and server certificate: real TLS handshakes with hostname checking."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from simulator.certs import CA_KEY_FILE, ensure_certificates


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str) -> None:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=name
        )
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", ["gateway.local", "127.0.0.2", "127.0.0.1"])
async def test_a_client_trusting_the_ca_accepts_every_configured_name(
    tmp_path: Path, name: str
) -> None:
    certs = ensure_certificates(tmp_path, ["gateway.local", "127.0.0.2", "127.0.0.1"])
    await handshake(certs.server_ssl_context(), certs.client_ssl_context(), name)


async def test_a_name_not_in_the_certificate_fails_verification(tmp_path: Path) -> None:
    certs = ensure_certificates(tmp_path, ["gateway.local"])
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(certs.server_ssl_context(), certs.client_ssl_context(), "other.local")


def test_certificates_are_reused_when_the_names_are_covered(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, ["gateway.local", "127.0.0.2"])
    before = first.server_cert_path.read_bytes()
    again = ensure_certificates(tmp_path, ["127.0.0.2"])
    assert again.server_cert_path.read_bytes() == before


def test_a_new_name_reissues_the_server_certificate_but_keeps_the_ca(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, ["gateway.local"])
    ca_before = first.ca_pem
    server_before = first.server_cert_path.read_bytes()
    again = ensure_certificates(tmp_path, ["gateway.local", "127.0.0.3"])
    assert again.ca_pem == ca_before
    assert again.server_cert_path.read_bytes() != server_before


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    certs = ensure_certificates(tmp_path, ["gateway.local"])
    for path in (certs.server_key_path, tmp_path / CA_KEY_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
