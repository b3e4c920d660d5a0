"""Shared access signature tokens, built and checked exactly as the Azure IoT SDKs make them.

Two flavours meet the simulator:

* module tokens (azure-iot-device, MQTT password):
  ``SharedAccessSignature sr={quote(host/devices/d/modules/m, safe='')}&sig=..&se=..``
* service tokens (azure-iot-hub, HTTP ``Authorization``):
  ``SharedAccessSignature sr={quote_plus(host)}&sig=..&se=..&skn={policy}``

Both sign ``<sr as sent> + "\\n" + <se>`` with HMAC-SHA256 under the base64-decoded key. The
signature is checked over the *encoded* ``sr`` exactly as it appears in the token, because the
two SDKs encode it differently and each signs what it sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass

from simulator.errors import SasTokenError

_PREFIX = "SharedAccessSignature "
_FIELDS = frozenset({"sr", "sig", "se", "skn"})
# A token is a header or an MQTT password; anything longer is not one the SDKs would make.
_MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True)
class SasToken:
    """A parsed token. ``resource`` is the decoded ``sr``; ``encoded_resource`` is as sent."""

    resource: str
    encoded_resource: str
    signature: str
    expiry: int
    key_name: str | None


def sign(key_b64: str, message: str) -> str:
    """Base64 HMAC-SHA256 of ``message`` under a base64 key (what IoT Hub and aziot-edged do)."""
    return sign_bytes(key_b64, message.encode("utf-8"))


def sign_bytes(key_b64: str, message: bytes) -> str:
    try:
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise SasTokenError("signing key is not valid base64") from e
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def module_resource(hub_host: str, device_id: str, module_id: str) -> str:
    return f"{hub_host}/devices/{device_id}/modules/{module_id}"


def build_module_token(
    hub_host: str, device_id: str, module_id: str, key_b64: str, expiry: int
) -> str:
    """A token as azure-iot-device's ``RenewableSasToken`` builds it for a module."""
    sr = urllib.parse.quote(module_resource(hub_host, device_id, module_id), safe="")
    sig = urllib.parse.quote(sign(key_b64, f"{sr}\n{expiry}"), safe="")
    return f"{_PREFIX}sr={sr}&sig={sig}&se={expiry}"


def build_service_token(hub_host: str, policy_name: str, key_b64: str, expiry: int) -> str:
    """A token as azure-iot-hub's ``SasToken`` builds it (note: ``/`` in sig stays unescaped)."""
    sr = urllib.parse.quote_plus(hub_host)
    sig = urllib.parse.quote(sign(key_b64, f"{sr}\n{expiry}"))
    return f"{_PREFIX}sr={sr}&sig={sig}&se={expiry}&skn={policy_name}"


def parse_token(token: str) -> SasToken:
    """Parse without checking the signature; every defect becomes a ``SasTokenError``."""
    if not isinstance(token, str):
        raise SasTokenError("token is not a string")
    if len(token) > _MAX_TOKEN_CHARS:
        raise SasTokenError("token is too long")
    if not token.startswith(_PREFIX):
        raise SasTokenError("token does not start with 'SharedAccessSignature '")
    fields: dict[str, str] = {}
    for part in token[len(_PREFIX) :].split("&"):
        name, sep, value = part.partition("=")
        if not sep:
            raise SasTokenError(f"token field {name[:20]!r} has no '='")
        if name not in _FIELDS:
            raise SasTokenError(f"token has an unknown field {name[:20]!r}")
        if name in fields:
            raise SasTokenError(f"token repeats the field {name!r}")
        fields[name] = value
    for required in ("sr", "sig", "se"):
        if not fields.get(required):
            raise SasTokenError(f"token lacks '{required}'")
    se = fields["se"]
    if not (se.isascii() and se.isdigit()):
        raise SasTokenError("token expiry 'se' is not a whole number of seconds")
    # unquote, not unquote_plus: '+' is a base64 character and both SDKs send it as %2B.
    signature = urllib.parse.unquote(fields["sig"])
    skn = fields.get("skn")
    return SasToken(
        resource=urllib.parse.unquote_plus(fields["sr"]),
        encoded_resource=fields["sr"],
        signature=signature,
        expiry=int(se),
        key_name=urllib.parse.unquote(skn) if skn else None,
    )


def check_signature(token: SasToken, key_b64: str) -> None:
    expected = sign(key_b64, f"{token.encoded_resource}\n{token.expiry}")
    # compare_digest keeps the time independent of where the strings first differ.
    if not hmac.compare_digest(expected.encode("ascii"), token.signature.encode("utf-8")):
        raise SasTokenError("token signature does not match the key")


def check_expiry(token: SasToken, now: float | None = None) -> None:
    current = time.time() if now is None else now
    if token.expiry <= current:
        raise SasTokenError("token has expired")


def verify_module_token(
    token: str,
    *,
    hub_hosts: frozenset[str],
    device_id: str,
    module_id: str,
    key_b64: str,
    now: float | None = None,
) -> SasToken:
    """Accept a module's MQTT password or raise ``SasTokenError`` saying why not.

    ``hub_hosts`` are the lower-cased names the hub answers to, as for ``verify_service_token``.
    """
    parsed = parse_token(token)
    host, _, path = parsed.resource.partition("/")
    expected = f"devices/{device_id}/modules/{module_id}"
    # IoT Hub compares resource URIs without regard to case (host names are case-insensitive).
    if host.lower() not in hub_hosts or path.lower() != expected.lower():
        names = ", ".join(sorted(hub_hosts))
        raise SasTokenError(f"token is for {parsed.resource!r}, not {expected!r} on {names}")
    if parsed.key_name is not None:
        raise SasTokenError("a module token must not name a policy (skn)")
    check_expiry(parsed, now)
    check_signature(parsed, key_b64)
    return parsed


def verify_service_token(
    token: str,
    *,
    hub_hosts: frozenset[str],
    policy_keys: dict[str, str],
    now: float | None = None,
) -> SasToken:
    """Accept a service ``Authorization`` header signed by a known policy.

    ``hub_hosts`` are the lower-cased names the hub answers to (its IoT Hub host name and the
    ``host:port`` the service API listens on, since the SDK signs its ``HostName`` as given).
    """
    parsed = parse_token(token)
    if parsed.key_name is None:
        raise SasTokenError("a service token must name its policy (skn)")
    key = policy_keys.get(parsed.key_name)
    if key is None:
        raise SasTokenError(f"unknown shared access policy {parsed.key_name!r}")
    host = parsed.resource.lower().split("/", 1)[0]
    if host not in hub_hosts:
        raise SasTokenError(f"token is for {parsed.resource!r}, not this hub")
    check_expiry(parsed, now)
    check_signature(parsed, key)
    return parsed
