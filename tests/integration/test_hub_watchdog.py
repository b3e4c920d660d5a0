# mypy: disallow-untyped-calls=False
"""A hub that stops answering makes ``python -m classifier`` exit non-zero within the window.

The module dials edgeHub through a loopback TCP proxy; freezing the proxy keeps the TCP
connection open but moves no byte, so the SDK still reports "connected" (paho would notice
only after its 60 s keepalive) while sends and twin calls never complete. edgeAgent does not
act on ``on-unhealthy``; the module must exit by itself for its restart policy to apply.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulator.mqtt.testing import random_loopback_host
from tests.integration.e2e_support import SDK_SOCKET_LEAK, module_client, template_manifest
from tests.integration.fault_support import Camera, start_classifier
from tests.integration.restartable_simulator import restartable_simulator
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_e2e_classifier import jpeg

pytestmark = [SDK_SOCKET_LEAK, pytest.mark.slow]

WINDOW_S = 6.0
# Generous on purpose: the verdict must come within the window, the exit after a bounded
# shutdown; a slow, shared CI machine must not turn scheduling delays into failures.
EXIT_ALLOWANCE_S = 60.0


async def test_a_wedged_hub_makes_the_module_exit_non_zero(tmp_path: Path) -> None:
    proxy_host = random_loopback_host()
    async with restartable_simulator(template_manifest(), (proxy_host,)) as host:
        proxy = TcpProxy(proxy_host, 8883, (host.settings.address, 8883))
        await proxy.start()
        module = await start_classifier(
            host.sim,
            proxy_host,
            tmp_path,
            HUB_WEDGE_TIMEOUT_S=str(WINDOW_S),
            HUB_CALL_TIMEOUT_S="2",
            HUB_PROBE_INTERVAL_S="1",
        )
        try:
            async with module_client(host.sim, "framesource") as client:
                camera = Camera(client, jpeg((220, 20, 20)), "wedge")
                flowing = asyncio.create_task(camera.run())
                await camera.until_acknowledged(20)
                proxy.freeze()
                frozen_at = asyncio.get_running_loop().time()
                code = await module.wait(WINDOW_S + EXIT_ALLOWANCE_S)
                exited_after_s = asyncio.get_running_loop().time() - frozen_at
                camera.stop()
                await flowing
        finally:
            await module.stop()
            await proxy.stop()
    log = module.log()
    print(f"watchdog: exit code {code} {exited_after_s:.1f} s after the hub froze")
    assert code != 0, log
    assert "wedged" in log, log
    assert exited_after_s >= WINDOW_S - 1.0, "exited before the window was over"
