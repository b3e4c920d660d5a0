"""Fixtures shared by the integration tests: an MQTT server core on a random loopback address,
and local runtimes that are always stopped (and killed if need be) after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.device.runtime import LocalRuntime, ModuleCommand, ProcessBackend
from simulator.mqtt import Limits, MqttServer
from simulator.mqtt.testing import RecordingHooks, ThrowawayTls, random_loopback_host, throwaway_tls
from tests.integration.runtime_support import FAST_BACKOFF, SETTINGS

MakeRuntime = Callable[..., LocalRuntime]


@pytest.fixture
def host() -> str:
    return random_loopback_host()


@pytest.fixture
def tls(host: str) -> ThrowawayTls:
    return throwaway_tls(host)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def limits() -> Limits:
    """Override in a test module for other limits."""
    return Limits()


@pytest.fixture
def mqtt_port() -> int:
    """0 picks a free port; the SDK tests override it with 8883, the port the SDK dials."""
    return 0


@pytest.fixture
async def server(
    hooks: RecordingHooks, tls: ThrowawayTls, host: str, limits: Limits, mqtt_port: int
) -> AsyncIterator[MqttServer]:
    server = MqttServer(hooks, tls.server_context, limits)
    await server.start(host, mqtt_port)
    yield server
    await server.stop()
    assert server.stats.internal_errors == 0


@pytest.fixture
async def make_runtime(tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    made: list[LocalRuntime] = []

    def make(commands: dict[str, ModuleCommand], **options: Any) -> LocalRuntime:
        options.setdefault("backoff", FAST_BACKOFF)
        options.setdefault("stop_grace_s", 2.0)
        backend = ProcessBackend(
            commands,
            echo_output=options.pop("echo_output", False),
            skip_unmapped=options.pop("skip_unmapped", False),
        )
        runtime = LocalRuntime(SETTINGS, backend, state_dir=tmp_path / "state", **options)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        try:
            await runtime.stop()
        finally:
            runtime.kill_now()
