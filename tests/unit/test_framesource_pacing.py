"""Which frames the frame source sends at a target rate."""

from __future__ import annotations

import itertools
import threading

from framesource.pacing import Pacer, RateGate


def kept(fps: float, source_fps: float, seconds: float, start: float = 0.0) -> list[float]:
    gate = RateGate(fps)
    frames = [start + i / source_fps for i in range(round(seconds * source_fps))]
    return [t for t in frames if gate.admit(t)]


def test_a_30_fps_source_at_10_fps_keeps_every_third_frame() -> None:
    sent = kept(10, 30, 3.0)
    assert len(sent) == 30
    assert all(abs(b - a - 0.1) < 1e-6 for a, b in itertools.pairwise(sent))


def test_a_25_fps_source_at_10_fps_keeps_ten_a_second_without_drift() -> None:
    assert len(kept(10, 25, 10.0)) == 100


def test_no_target_rate_keeps_every_frame() -> None:
    assert len(kept(0, 30, 2.0)) == 60


def test_after_a_gap_the_schedule_restarts_instead_of_bursting() -> None:
    gate = RateGate(10)
    assert gate.admit(0.0)
    assert gate.admit(50.0)  # five minutes... later: sent at once
    assert not gate.admit(50.03)
    assert gate.admit(50.1)


def test_a_file_that_loops_starts_its_schedule_again() -> None:
    gate = RateGate(10)
    assert [gate.admit(t) for t in (0.0, 0.1, 0.2, 0.0, 0.05, 0.1)] == [
        True, True, True, True, False, True,
    ]  # fmt: skip


def test_the_pacer_returns_at_once_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    clock = iter([100.0, 100.0])
    pacer = Pacer(stop, clock=lambda: next(clock))
    assert not pacer.wait(0.0)
