"""The background task table behind UploadModuleLogs and GetTaskStatus: bounded, with the
oldest finished task dropped first."""

from __future__ import annotations

import asyncio

import pytest

from simulator.device.agent_methods.uploads import BackgroundTasks
from simulator.errors import RequestFailedError


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_task_runs_then_reports_completed_or_failed_with_the_reason() -> None:
    tasks = BackgroundTasks()

    async def fine() -> None:
        return None

    async def broken() -> None:
        raise OSError("storage unreachable\nmore detail")

    ok = tasks.run("upload logs", fine)
    bad = tasks.run("upload logs", broken)
    assert ok["status"] == "Running" and ok["message"] == ""
    await settle()
    assert tasks.status(str(ok["correlationId"]))["status"] == "Completed"
    failed = tasks.status(str(bad["correlationId"]))
    assert failed["status"] == "Failed"
    assert failed["message"] == "Task upload logs failed because of error storage unreachable"
    await tasks.close()


async def test_a_full_table_drops_the_oldest_finished_task_and_refuses_when_all_run() -> None:
    tasks = BackgroundTasks(max_tasks=2)
    release = asyncio.Event()

    async def quick() -> None:
        return None

    async def blocked() -> None:
        await release.wait()

    first = tasks.run("upload logs", quick)
    second = tasks.run("upload logs", blocked)
    await settle()
    third = tasks.run("upload logs", blocked)  # evicts the finished first task
    assert tasks.status(str(first["correlationId"]))["status"] == "Unknown"
    with pytest.raises(RequestFailedError, match="still running"):
        tasks.run("upload logs", blocked)
    release.set()
    await settle()
    for answer in (second, third):
        assert tasks.status(str(answer["correlationId"]))["status"] == "Completed"
    await tasks.close()


async def test_closing_cancels_what_still_runs() -> None:
    tasks = BackgroundTasks()

    async def forever() -> None:
        await asyncio.Event().wait()

    answer = tasks.run("upload logs", forever)
    await settle()
    await tasks.close()
    assert tasks.status(str(answer["correlationId"]))["status"] == "Cancelled"
