# mypy: disallow-untyped-calls=False
"""Exactly one outcome per acknowledged frame while edgeHub restarts, the network between the
module and edgeHub is cut, or the module renews its SAS token.

Real parts throughout: ``python -m classifier`` (azure-iot-device 2.14) and a camera on the
real SDK, the simulator's edgeHub over TLS, a TCP proxy on loopback for the cut. Frames flow
steadily before, during and after each fault. A frame counts once the camera's send to
edgeHub was acknowledged; at the end every such frame must have exactly one outcome at
``$upstream`` (a prediction or an error), counted by frame id. MQTT may deliver one outcome
twice (at least once); such copies carry the same message id and are reported, not counted.

Each test prints its counts (run with ``-s`` to see them). Deadlines are generous and every
wait is for an event, never a fixed sleep that must be long enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulator.device.device import MQTT_PORT
from simulator.mqtt.testing import eventually, random_loopback_host
from tests.integration.e2e_support import (
    SDK_SOCKET_LEAK,
    module_client,
    template_manifest,
    trust_simulator,
)
from tests.integration.fault_support import (
    Camera,
    OutcomeCounts,
    module_counters,
    start_classifier,
    wait_for_outcomes,
)
from tests.integration.restartable_simulator import RestartableSimulator, restartable_simulator
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_e2e_classifier import jpeg

pytestmark = [SDK_SOCKET_LEAK, pytest.mark.slow]

FRAMES_BEFORE = 40  # about two seconds of frames at 20 fps
FRAMES_AFTER = 40
# A small intake, so that bursts make the module pause its input (flow control) around the
# faults as well; a call timeout short enough that a wedged connection (paho's thread dies
# on an SSLEOFError when edgeHub closes the connection under a send) is renewed soon.
MODULE_SETTINGS = {"INTAKE_CAPACITY": "4", "HUB_CALL_TIMEOUT_S": "10"}
PRINTED_COUNTERS = ("outbox", "messages", "intake", "hub")
# Sent back to back just before the fault, so it finds frames being scored and outcomes
# being sent (how many, if any, depends on timing: the counts printed say).
BURST = 60
DOWN_S = 3.0


@pytest.fixture
async def host_and_proxy() -> AsyncIterator[tuple[RestartableSimulator, TcpProxy]]:
    proxy_host = random_loopback_host()
    async with restartable_simulator(template_manifest(), (proxy_host,)) as host:
        proxy = TcpProxy(proxy_host, MQTT_PORT, (host.settings.address, 8883))
        await proxy.start()
        try:
            yield host, proxy
        finally:
            await proxy.stop()


async def check(name: str, host: RestartableSimulator, counts: OutcomeCounts) -> None:
    shown: dict[str, object]
    try:
        counters = await module_counters(host.sim)
        shown = {k: v for k, v in sorted(counters.items()) if k.startswith(PRINTED_COUNTERS)}
    except Exception as e:  # e.g. 404: the module is not connected; the counts still tell
        shown = {"get_status failed": repr(e)}
    print(f"{counts.line(name)}; module counters {shown}")
    assert not counts.missing, f"{counts.line(name)}; e.g. {counts.missing[:5]}"
    assert not counts.multiple, f"{counts.line(name)}; e.g. {counts.multiple[:5]}"
    assert counts.outcomes == counts.acknowledged


async def test_edgehub_restarted_mid_stream(
    host_and_proxy: tuple[RestartableSimulator, TcpProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, _ = host_and_proxy
    trust_simulator(monkeypatch, host.sim)
    module = await start_classifier(host.sim, host.settings.address, tmp_path, **MODULE_SETTINGS)
    try:
        with module.log_on_failure():
            async with module_client(host.sim, "framesource") as client:
                camera = Camera(client, jpeg((220, 20, 20)), "restart")
                flowing = asyncio.create_task(camera.run())
                await camera.until_acknowledged(FRAMES_BEFORE)
                await camera.send_burst(BURST)
                # Down long enough that sends fail on both sides and the SDK backs off.
                await host.restart(down_s=DOWN_S)
                trust_simulator(monkeypatch, host.sim)
                await camera.until_acknowledged(len(camera.acknowledged) + FRAMES_AFTER)
                camera.stop()
                await flowing
            counts = await wait_for_outcomes(lambda: host.sim, camera)
            await check("edgeHub restart", host, counts)
            # Sends during the outage either fail or wait for the SDK to reconnect; which one
            # depends on timing, but one of them must show that edgeHub was really away.
            assert camera.failures or camera.longest_send_s >= DOWN_S, (
                f"the camera never noticed edgeHub was down: no failed send, longest send "
                f"{camera.longest_send_s:.2f} s"
            )
    finally:
        await module.stop()


async def test_network_cut_and_healed_between_module_and_edgehub(
    host_and_proxy: tuple[RestartableSimulator, TcpProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, proxy = host_and_proxy
    trust_simulator(monkeypatch, host.sim)
    module = await start_classifier(host.sim, proxy.listen[0], tmp_path, **MODULE_SETTINGS)
    try:
        with module.log_on_failure():
            async with module_client(host.sim, "framesource") as client:
                camera = Camera(client, jpeg((20, 220, 20)), "cut")
                flowing = asyncio.create_task(camera.run())
                await camera.until_acknowledged(FRAMES_BEFORE)
                await camera.send_burst(BURST)
                proxy.cut()
                # Frames keep arriving at edgeHub while the module is cut off from it.
                await camera.until_acknowledged(len(camera.acknowledged) + FRAMES_AFTER)
                proxy.heal()
                await camera.until_acknowledged(len(camera.acknowledged) + FRAMES_AFTER)
                camera.stop()
                await flowing
            counts = await wait_for_outcomes(lambda: host.sim, camera)
            await check("network cut", host, counts)
            assert proxy.connections >= 2, "the module never reconnected through the proxy"
    finally:
        await module.stop()


async def test_sas_token_renewed_while_frames_flow(
    host_and_proxy: tuple[RestartableSimulator, TcpProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, proxy = host_and_proxy
    trust_simulator(monkeypatch, host.sim)
    # The SDK renews 120 s before expiry, by reconnecting: every 12 s with a 132 s token.
    module = await start_classifier(
        host.sim, proxy.listen[0], tmp_path, SAS_TOKEN_TTL_S="132", **MODULE_SETTINGS
    )
    try:
        with module.log_on_failure():
            async with module_client(host.sim, "framesource") as client:
                camera = Camera(client, jpeg((20, 20, 220)), "sas")
                flowing = asyncio.create_task(camera.run())
                # Two renewals, each a new connection through the proxy, with frames flowing.
                await eventually(lambda: proxy.connections >= 3, 120, "two SAS token renewals")
                await camera.until_acknowledged(len(camera.acknowledged) + FRAMES_AFTER)
                camera.stop()
                await flowing
            counts = await wait_for_outcomes(lambda: host.sim, camera)
            await check("SAS renewal", host, counts)
    finally:
        await module.stop()
