"""A local certificate authority and the gateway's server certificate.

The module SDK always speaks TLS with hostname checking against ``GatewayHostName``, and the
service SDK checks the hub's ``HostName``; so the server certificate carries every name the
simulator answers to as a subject alternative name (DNS names and IP addresses such as
127.0.0.2). The CA is kept across restarts so modules that already trust it keep working; the
server certificate is reissued when the wanted names change or it nears expiry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key.pem"

_CA_VALID_DAYS = 3650
_SERVER_VALID_DAYS = 365
# Reissue early so a long test run or demo never meets an expiring certificate.
_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertificateSet:
    """PEM paths under the state directory; ``ca_pem`` is what clients are told to trust."""

    ca_cert_path: Path
    server_cert_path: Path
    server_key_path: Path

    @property
    def ca_pem(self) -> str:
        return self.ca_cert_path.read_text(encoding="ascii")

    def server_ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+ server context; the SDK's paho client insists on TLS 1.2."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert_path, self.server_key_path)
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the simulator's CA (for tests and tools)."""
        context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def split_names(
    names: Iterable[str],
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """Sort names into DNS names and IP addresses, as each needs its own SAN type."""
    dns: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for name in names:
        try:
            ips.append(ipaddress.ip_address(name))
        except ValueError:
            dns.append(name.lower())
    return dns, ips


def ensure_certificates(
    state_dir: Path,
    names: Iterable[str],
    *,
    now: dt.datetime | None = None,
    server: str = "server",
) -> CertificateSet:
    """Load or create the CA, and (re)issue the server certificate for ``names``.

    ``server`` names the certificate's files (``server.pem``, ``server.key.pem``): other
    local servers (the image registry) get certificates of their own from the same CA.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise ValueError("the server certificate needs at least one host name or IP address")
    current = now or dt.datetime.now(dt.UTC)
    state_dir.mkdir(parents=True, exist_ok=True)
    certs = CertificateSet(
        ca_cert_path=state_dir / CA_CERT_FILE,
        server_cert_path=state_dir / f"{server}.pem",
        server_key_path=state_dir / f"{server}.key.pem",
    )
    ca_key_path = state_dir / CA_KEY_FILE
    if certs.ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(certs.ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path} does not hold an EC private key")
        reissue_server = not _server_cert_fits(certs.server_cert_path, wanted, current)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue_ca(ca_key, current)
        _write_private(ca_key_path, _key_pem(ca_key))
        certs.ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        reissue_server = True
    if reissue_server or not certs.server_key_path.exists():
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _issue_server(ca_cert, ca_key, server_key, wanted, current)
        _write_private(certs.server_key_path, _key_pem(server_key))
        # The chain file carries the CA too, so clients that only know the root still verify.
        certs.server_cert_path.write_bytes(
            server_cert.public_bytes(serialization.Encoding.PEM)
            + ca_cert.public_bytes(serialization.Encoding.PEM)
        )
    return certs


def _server_cert_fits(path: Path, wanted: list[str], now: dt.datetime) -> bool:
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    if cert.not_valid_after_utc - _RENEW_BEFORE < now:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns, ips = split_names(wanted)
    have_dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return set(dns) <= have_dns and set(ips) <= have_ips


def _issue_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "IoT Edge simulator local CA")])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_server(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    names: list[str],
    now: dt.datetime,
) -> x509.Certificate:
    dns, ips = split_names(names)
    general: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    general += [x509.IPAddress(ip) for ip in ips]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_SERVER_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(general), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start rather than chmod after: the key is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
