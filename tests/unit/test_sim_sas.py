# mypy: disallow-untyped-calls=False
"""SAS tokens: the simulator accepts exactly what the real SDKs produce, and nothing else."""

from __future__ import annotations

import base64
import contextlib
import time

import pytest
from azure.iot.device.common.auth.sastoken import RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from azure.iot.hub.sastoken import SasToken as HubSasToken
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import SasTokenError
from simulator.sas import (
    build_module_token,
    build_service_token,
    parse_token,
    verify_module_token,
    verify_service_token,
)

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
HUB = "sim-hub.azure-devices.net"


def sdk_module_token(key: str = KEY, ttl: int = 3600) -> str:
    uri = f"{HUB}/devices/dev1/modules/classifier"
    return str(RenewableSasToken(uri, SymmetricKeySigningMechanism(key), ttl=ttl))


def check_module(token: str, key: str = KEY, now: float | None = None) -> None:
    verify_module_token(
        token,
        hub_hosts=frozenset({HUB}),
        device_id="dev1",
        module_id="classifier",
        key_b64=key,
        now=now,
    )


def check_service(token: str, hosts: frozenset[str] = frozenset({"127.0.0.1:8443"})) -> None:
    verify_service_token(token, hub_hosts=hosts, policy_keys={"iothubowner": KEY})


def test_a_token_made_by_the_device_sdk_is_accepted() -> None:
    check_module(sdk_module_token())


def test_a_token_made_by_the_service_sdk_is_accepted_for_a_host_with_a_port() -> None:
    check_service(str(HubSasToken("127.0.0.1:8443", KEY, "iothubowner")))


def test_the_simulators_own_tokens_verify_like_the_sdks() -> None:
    expiry = int(time.time()) + 60
    check_module(build_module_token(HUB, "dev1", "classifier", KEY, expiry))
    check_service(build_service_token("127.0.0.1:8443", "iothubowner", KEY, expiry))


def test_a_module_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(SasTokenError, match="signature"):
        check_module(sdk_module_token(OTHER_KEY))


def test_an_expired_module_token_is_refused() -> None:
    token = sdk_module_token()
    with pytest.raises(SasTokenError, match="expired"):
        check_module(token, now=time.time() + 7200)


def test_a_token_for_another_module_is_refused() -> None:
    token = build_module_token(HUB, "dev1", "other", KEY, int(time.time()) + 60)
    with pytest.raises(SasTokenError, match="not"):
        check_module(token)


def test_a_module_token_naming_a_policy_is_refused() -> None:
    token = sdk_module_token() + "&skn=iothubowner"
    with pytest.raises(SasTokenError, match="skn"):
        check_module(token)


def test_a_service_token_without_a_policy_is_refused() -> None:
    token = build_module_token("127.0.0.1:8443", "d", "m", KEY, int(time.time()) + 60)
    with pytest.raises(SasTokenError, match="skn"):
        check_service(token)


def test_a_service_token_for_an_unknown_policy_is_refused() -> None:
    token = build_service_token("127.0.0.1:8443", "registryRead", KEY, int(time.time()) + 60)
    with pytest.raises(SasTokenError, match="unknown shared access policy"):
        check_service(token)


def test_a_service_token_for_another_hub_is_refused() -> None:
    token = build_service_token("elsewhere:8443", "iothubowner", KEY, int(time.time()) + 60)
    with pytest.raises(SasTokenError, match="not this hub"):
        check_service(token)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "SharedAccessSignature"),
        ("Bearer abc", "SharedAccessSignature"),
        ("SharedAccessSignature ", "no '='"),
        ("SharedAccessSignature sr=a&sig=b", "lacks 'se'"),
        ("SharedAccessSignature sr=a&sig=b&se=soon", "whole number"),
        ("SharedAccessSignature sr=a&sig=b&se=1&se=2", "repeats"),
        ("SharedAccessSignature sr=a&sig=b&se=1&x=y", "unknown field"),
        ("SharedAccessSignature sr=&sig=b&se=1", "lacks 'sr'"),
        ("SharedAccessSignature " + "a" * 5000, "too long"),
    ],
)
def test_malformed_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(SasTokenError, match=reason):
        parse_token(token)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_parsing_junk_never_raises_anything_but_a_token_error(junk: str) -> None:
    for candidate in (junk, "SharedAccessSignature " + junk):
        with contextlib.suppress(SasTokenError):
            parse_token(candidate)
