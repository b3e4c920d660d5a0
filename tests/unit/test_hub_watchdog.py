"""The wedge verdict: calls not completing while the SDK says connected, for longer than the
window; a disconnection or a completed call resets the evidence."""

from __future__ import annotations

import asyncio

import pytest

from edge_module.watchdog import HubWatchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def hang() -> None:
    await asyncio.Event().wait()


async def test_a_timed_out_call_counts_until_a_call_completes() -> None:
    clock, connected = Clock(), [True]
    dog = HubWatchdog(10.0, lambda: connected[0], clock)
    with pytest.raises(TimeoutError):
        await dog.watch(hang(), 0.01)
    clock.now += 11
    assert dog.stuck_for_s() == pytest.approx(11)
    await dog.watch(asyncio.sleep(0), 1.0)
    assert dog.stuck_for_s() == 0.0


async def test_nothing_counts_while_the_sdk_reports_no_connection() -> None:
    clock, connected = Clock(), [True]
    dog = HubWatchdog(10.0, lambda: connected[0], clock)
    with pytest.raises(TimeoutError):
        await dog.watch(hang(), 0.01)
    connected[0] = False
    clock.now += 50
    assert dog.stuck_for_s() == 0.0
    connected[0] = True  # a new connection: the old evidence says nothing about it
    clock.now += 1
    assert dog.stuck_for_s() == 0.0


async def test_the_run_loop_reports_a_wedge_once_and_probes_when_quiet() -> None:
    connected = [True]
    probes = 0
    verdicts: list[str] = []

    async def probe() -> None:
        nonlocal probes
        probes += 1
        await hang()

    dog = HubWatchdog(0.2, lambda: connected[0])
    await asyncio.wait_for(dog.run(probe, 0.05, 0.05, verdicts.append), 10)
    assert probes >= 1
    assert len(verdicts) == 1 and "wedged" in verdicts[0]


async def idle_probe() -> None:
    pass


async def stuck_watchdog(window_s: float) -> HubWatchdog:
    """A watchdog whose connection already has a call that timed out."""
    dog = HubWatchdog(window_s, lambda: True)
    with pytest.raises(TimeoutError):
        await dog.watch(hang(), 0.01)
    return dog


async def test_a_stuck_connection_is_renewed_before_the_window_ends() -> None:
    dog = await stuck_watchdog(0.5)
    renewals = 0

    async def renew() -> None:
        nonlocal renewals
        renewals += 1

    verdicts: list[str] = []
    run = asyncio.create_task(dog.run(idle_probe, 60.0, 0.05, verdicts.append, renew))
    await asyncio.sleep(1.0)  # twice the window: a verdict would have come by now
    run.cancel()
    assert renewals == 1 and verdicts == []
    assert dog.stuck_for_s() == 0.0


async def test_when_renewing_fails_the_window_still_ends_in_a_verdict() -> None:
    dog = await stuck_watchdog(0.3)

    async def renew() -> None:
        raise ConnectionError("edgeHub does not answer")

    verdicts: list[str] = []
    await asyncio.wait_for(dog.run(idle_probe, 60.0, 0.05, verdicts.append, renew), 10)
    assert len(verdicts) == 1
