"""The local runtime's restart policies, backoff, stopping and output capture, with real
child processes."""

from __future__ import annotations

import asyncio
import itertools
import time

from simulator.device.runtime import BackoffPolicy, ModuleCommand, RuntimeStatus
from tests.integration.runtime_support import (
    IDLE,
    IGNORE_SIGTERM,
    START_THEN_EXIT,
    WITH_GRANDCHILD,
    manifest,
    module,
    pid_alive,
    py,
    start_times,
    wait_until,
)


async def test_always_restarts_a_module_that_exits_cleanly(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 0)})
    await runtime.start(manifest({"m": module(restart="always")}))
    await wait_until(lambda: len(start_times(starts)) >= 3, what="three starts")
    assert runtime.module_reports()["m"].restart_count >= 2


async def test_on_failure_restarts_after_a_non_zero_exit(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 1)})
    await runtime.start(manifest({"m": module(restart="on-failure")}))
    await wait_until(lambda: len(start_times(starts)) >= 2, what="a restart")


async def test_on_failure_leaves_a_cleanly_exited_module_stopped(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 0)})
    await runtime.start(manifest({"m": module(restart="on-failure")}))
    await wait_until(lambda: runtime.module_reports()["m"].exit_code == 0, what="exit")
    report = runtime.module_reports()["m"]
    assert report.runtime_status is RuntimeStatus.STOPPED
    assert report.restart_count == 0
    assert len(start_times(starts)) == 1


async def test_never_leaves_a_failed_module_failed(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 3)})
    await runtime.start(manifest({"m": module(restart="never")}))
    await wait_until(lambda: runtime.module_reports()["m"].exit_code == 3, what="exit")
    report = runtime.module_reports()["m"]
    assert report.runtime_status is RuntimeStatus.FAILED
    assert report.pid is None
    assert len(start_times(starts)) == 1


async def test_backoff_doubles_between_restarts_up_to_the_cap(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    backoff = BackoffPolicy(unit_s=0.15, max_s=0.6, stable_after_s=30.0, max_restarts=None)
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 1)}, backoff=backoff)
    await runtime.start(manifest({"m": module(restart="on-failure")}))
    await wait_until(lambda: len(start_times(starts)) >= 6, timeout_s=8.0, what="six starts")
    times = start_times(starts)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Delays are 0, 0.15, 0.3, 0.6, 0.6 s; each gap adds a child's start-up and exit time,
    # so only the lower bounds are tight and the cap is checked loosely from above.
    for gap, delay in zip(gaps, [0.0, 0.15, 0.3, 0.6, 0.6], strict=False):
        assert gap >= delay * 0.95
    assert gaps[0] < gaps[3]
    assert gaps[4] < 0.6 + 1.0


async def test_crash_count_resets_after_the_module_stays_up(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    # Without the reset the second restart would wait a whole 5 s unit.
    backoff = BackoffPolicy(unit_s=5.0, max_s=5.0, stable_after_s=0.3, max_restarts=None)
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 1, 0.4)}, backoff=backoff)
    await runtime.start(manifest({"m": module(restart="on-failure")}))
    await wait_until(lambda: len(start_times(starts)) >= 3, timeout_s=4.0, what="three starts")
    assert runtime.module_reports()["m"].restart_count == 1


async def test_a_module_is_left_failed_after_max_restarts(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    backoff = BackoffPolicy(unit_s=0.05, max_s=0.05, stable_after_s=30.0, max_restarts=2)
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 0)}, backoff=backoff)
    await runtime.start(manifest({"m": module(restart="always")}))
    await wait_until(
        lambda: runtime.module_reports()["m"].runtime_status is RuntimeStatus.FAILED,
        what="failed status",
    )
    assert runtime.module_reports()["m"].restart_count == 2
    assert len(start_times(starts)) == 3


async def test_a_restart_keeps_the_generation_id(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    created: list[tuple[str, str]] = []
    runtime = make_runtime(
        {"m": py(START_THEN_EXIT, starts, 1)},
        on_module_created=lambda name, gen: created.append((name, gen)),
    )
    await runtime.start(manifest({"m": module(restart="on-failure")}))
    await wait_until(lambda: len(start_times(starts)) >= 2, what="a restart")
    assert len(created) == 1
    assert runtime.module_reports()["m"].generation_id == created[0][1]


async def test_stop_kills_a_module_that_ignores_sigterm_after_the_grace_period(
    make_runtime, tmp_path
):
    ready = tmp_path / "ready"
    runtime = make_runtime({"m": py(IGNORE_SIGTERM, ready)}, stop_grace_s=0.5)
    await runtime.start(manifest({"m": module()}))
    await wait_until(ready.exists, what="SIGTERM handler")
    pid = runtime.module_reports()["m"].pid
    assert pid is not None
    began = time.monotonic()
    await runtime.stop()
    took_s = time.monotonic() - began
    assert 0.45 <= took_s < 3.0
    assert not pid_alive(pid)


async def test_stop_is_quick_for_a_module_that_honours_sigterm(make_runtime):
    runtime = make_runtime({"m": py(IDLE)}, stop_grace_s=5.0)
    await runtime.start(manifest({"m": module()}))
    pid = runtime.module_reports()["m"].pid
    assert pid is not None
    began = time.monotonic()
    await runtime.stop()
    assert time.monotonic() - began < 2.0
    assert not pid_alive(pid)


async def test_stop_reports_the_module_stopped_with_dockers_exit_code(make_runtime, tmp_path):
    ready = tmp_path / "ready"
    runtime = make_runtime({"m": py(IGNORE_SIGTERM, ready)}, stop_grace_s=0.2)
    await runtime.start(manifest({"m": module()}))
    await wait_until(ready.exists, what="SIGTERM handler")
    await runtime.stop()
    # The module stays in the manifest; stop() only ends its process.
    report = runtime.module_reports()["m"]
    assert report.runtime_status is RuntimeStatus.STOPPED
    assert report.exit_code == 137


async def test_a_module_that_exits_takes_its_children_with_it(make_runtime, tmp_path):
    child_pid_file = tmp_path / "child"
    runtime = make_runtime({"m": py(WITH_GRANDCHILD, child_pid_file, 0)})
    await runtime.start(manifest({"m": module(restart="never")}))
    await wait_until(child_pid_file.exists, what="grandchild")
    child_pid = int(child_pid_file.read_text())
    await wait_until(lambda: not pid_alive(child_pid), what="grandchild gone")


async def test_stop_ends_the_whole_process_group(make_runtime, tmp_path):
    child_pid_file = tmp_path / "child"
    runtime = make_runtime({"m": py(WITH_GRANDCHILD, child_pid_file, "stay")})
    await runtime.start(manifest({"m": module()}))
    await wait_until(child_pid_file.exists, what="grandchild")
    child_pid = int(child_pid_file.read_text())
    await runtime.stop()
    await wait_until(lambda: not pid_alive(child_pid), timeout_s=2.0, what="grandchild gone")


async def test_output_goes_to_a_per_module_log_and_is_echoed_with_a_prefix(make_runtime, capsys):
    talker = "import sys; print('hello out'); print('hello err', file=sys.stderr)"
    runtime = make_runtime({"talker": py(talker)}, echo_output=True)
    await runtime.start(manifest({"talker": module(restart="never")}))
    await wait_until(lambda: runtime.module_reports()["talker"].exit_code == 0, what="exit")
    log = runtime.log_path("talker").read_text()
    assert "hello out" in log
    assert "hello err" in log
    assert "runtime: started pid=" in log
    assert "[talker] hello out" in capsys.readouterr().err


async def test_a_command_that_cannot_start_is_reported_failed(make_runtime, tmp_path):
    missing = ModuleCommand([str(tmp_path / "no-such-program")])
    runtime = make_runtime({"m": missing})
    await runtime.start(manifest({"m": module(restart="never")}))
    await wait_until(
        lambda: runtime.module_reports()["m"].runtime_status is RuntimeStatus.FAILED,
        what="failed status",
    )
    report = runtime.module_reports()["m"]
    assert report.exit_code == 127
    assert "cannot start" in report.status_description


async def test_a_restart_requested_during_backoff_starts_the_module_at_once(make_runtime, tmp_path):
    starts = tmp_path / "starts"
    backoff = BackoffPolicy(unit_s=30.0, max_s=30.0, stable_after_s=60.0, max_restarts=None)
    runtime = make_runtime({"m": py(START_THEN_EXIT, starts, 1)}, backoff=backoff)
    await runtime.start(manifest({"m": module(restart="on-failure")}))
    # The first restart is immediate; the second would wait 30 s.
    await wait_until(
        lambda: len(start_times(starts)) >= 2
        and runtime.module_reports()["m"].runtime_status is RuntimeStatus.BACKOFF,
        what="the second backoff",
    )
    await runtime.restart_module("m")
    await wait_until(lambda: len(start_times(starts)) >= 3, what="a start on request")
    await asyncio.sleep(0.5)  # a request left pending would restart it once more
    assert len(start_times(starts)) == 3
    assert runtime.module_reports()["m"].restart_count == 1  # a request is not a crash
