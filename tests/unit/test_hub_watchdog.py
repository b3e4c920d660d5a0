"""The wedge verdict: calls not completing while the SDK says connected, for longer than the
window; a disconnection or a completed call resets the evidence."""

from __future__ import annotations

import asyncio

import pytest

from classifier.watchdog import HubWatchdog


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
