"""The local runtime's module environment, startup order, reconciliation and status reports,
with real child processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.deployment.manifest import load_manifest
from simulator.device.runtime import (
    WORKLOAD_API_VERSION,
    LocalRuntimeError,
    ModuleCommand,
    ModuleReport,
    ReconcileResult,
    RuntimeStatus,
)
from tests.integration.conftest import MakeRuntime
from tests.integration.runtime_support import (
    ENV_DUMP,
    FIXTURE_MANIFEST,
    IDLE,
    manifest,
    module,
    pid_alive,
    py,
    wait_until,
)


async def _module_env(make_runtime: MakeRuntime, tmp_path: Path, monkeypatch) -> dict[str, str]:
    # A parent that itself runs as a module must not hand its identity down.
    monkeypatch.setenv("IOTEDGE_MODULEID", "parent-module")
    monkeypatch.setenv("EdgeHubConnectionString", "HostName=elsewhere;DeviceId=x")
    dump = tmp_path / "classifier.env.json"
    created: dict[str, str] = {}
    commands = {
        "classifier": py(ENV_DUMP, dump),
        "camera": py(IDLE),
    }
    commands["classifier"] = ModuleCommand(commands["classifier"].argv, env={"EXTRA": "yes"})
    runtime = make_runtime(commands, on_module_created=created.__setitem__)
    await runtime.start(load_manifest(FIXTURE_MANIFEST))
    await wait_until(dump.exists, what="environment dump")
    env: dict[str, str] = json.loads(dump.read_text())
    assert env["IOTEDGE_MODULEGENERATIONID"] == created["classifier"]
    return env


async def test_a_module_gets_the_identity_variables_edge_agent_gives(
    make_runtime, tmp_path, monkeypatch
):
    env = await _module_env(make_runtime, tmp_path, monkeypatch)
    assert env["IOTEDGE_IOTHUBHOSTNAME"] == "testhub.azure-devices.net"
    assert env["IOTEDGE_DEVICEID"] == "edge-dev-1"
    assert env["IOTEDGE_MODULEID"] == "classifier"
    assert env["IOTEDGE_GATEWAYHOSTNAME"] == "127.0.0.2"
    assert env["IOTEDGE_WORKLOADURI"] == "http://127.0.0.1:15581/"
    assert env["IOTEDGE_APIVERSION"] == WORKLOAD_API_VERSION == "2022-08-03"
    assert env["IOTEDGE_AUTHSCHEME"] == "sasToken"
    assert env["RuntimeLogLevel"] == "debug"
    assert "EdgeHubConnectionString" not in env


async def test_a_module_gets_the_manifest_env_and_the_callers_extras(
    make_runtime, tmp_path, monkeypatch
):
    env = await _module_env(make_runtime, tmp_path, monkeypatch)
    assert env["MODEL_PATH"] == "/models/classifier.onnx"
    assert env["USE_GPU"] == "true"
    assert env["ORT_LOG_SEVERITY"] == "3"  # from createOptions.Env
    assert env["EXTRA"] == "yes"
    assert "PATH" in env


async def test_a_generation_id_source_supplies_the_modules_generation_id(make_runtime, tmp_path):
    dump = tmp_path / "env.json"
    runtime = make_runtime({"m": py(ENV_DUMP, dump)}, generation_id_for=lambda m: f"gen-of-{m}")
    await runtime.start(manifest({"m": module()}))
    await wait_until(dump.exists, what="environment dump")
    assert json.loads(dump.read_text())["IOTEDGE_MODULEGENERATIONID"] == "gen-of-m"
    assert runtime.module_reports()["m"].generation_id == "gen-of-m"


async def test_modules_are_created_in_startup_order(make_runtime):
    created: list[str] = []
    runtime = make_runtime(
        {n: py(IDLE) for n in ("a", "b", "c", "d")},
        on_module_created=lambda name, _gen: created.append(name),
    )
    modules = {"a": module(order=2), "b": module(order=0), "c": module(), "d": module(order=1)}
    await runtime.start(manifest(modules))
    assert created == ["b", "d", "a", "c"]
    reports = runtime.module_reports()
    started = [reports[n].last_start_time for n in created]
    assert started == sorted(started)


async def _reconcile(
    make_runtime: MakeRuntime,
) -> tuple[dict[str, ModuleReport], dict[str, ModuleReport], ReconcileResult, list[str]]:
    removed: list[str] = []
    runtime = make_runtime(
        {n: py(IDLE) for n in ("keep", "change", "drop", "add")},
        on_module_removed=removed.append,
    )
    await runtime.start(
        manifest({"keep": module(), "change": module(env={"A": 1}), "drop": module()})
    )
    before = runtime.module_reports()
    result = await runtime.apply(
        manifest(
            {
                "keep": module(order=5),  # startupOrder alone does not recreate
                "change": module(env={"A": 2}),
                "add": module(),
            }
        )
    )
    return before, runtime.module_reports(), result, removed


async def test_apply_reports_what_it_changed(make_runtime):
    _, _, result, _ = await _reconcile(make_runtime)
    assert result == ReconcileResult(
        added=("add",), removed=("drop",), recreated=("change",), unchanged=("keep",)
    )


async def test_apply_leaves_an_unchanged_module_running_as_it_was(make_runtime):
    before, after, _, _ = await _reconcile(make_runtime)
    assert after["keep"].pid == before["keep"].pid
    assert after["keep"].generation_id == before["keep"].generation_id


async def test_apply_recreates_a_changed_module_with_a_new_generation_id(make_runtime):
    before, after, _, _ = await _reconcile(make_runtime)
    old_pid = before["change"].pid
    assert old_pid is not None
    assert after["change"].pid not in (None, old_pid)
    assert after["change"].generation_id != before["change"].generation_id
    assert not pid_alive(old_pid)


async def test_apply_stops_a_removed_module_and_starts_an_added_one(make_runtime):
    before, after, _, removed = await _reconcile(make_runtime)
    dropped_pid = before["drop"].pid
    assert dropped_pid is not None
    assert not pid_alive(dropped_pid)
    assert "drop" not in after
    assert removed == ["drop"]
    assert after["add"].runtime_status is RuntimeStatus.RUNNING


async def test_apply_stops_a_module_whose_desired_status_becomes_stopped(make_runtime):
    runtime = make_runtime({"m": py(IDLE)})
    await runtime.start(manifest({"m": module()}))
    pid = runtime.module_reports()["m"].pid
    assert pid is not None
    await runtime.apply(manifest({"m": module(status="stopped")}))
    report = runtime.module_reports()["m"]
    assert report.runtime_status is RuntimeStatus.STOPPED
    assert report.pid is None
    assert not pid_alive(pid)


async def test_a_manifest_with_a_module_that_has_no_command_is_refused_whole(make_runtime):
    runtime = make_runtime({"a": py(IDLE)})
    await runtime.start(manifest({"a": module()}))
    pid = runtime.module_reports()["a"].pid
    with pytest.raises(LocalRuntimeError, match="camera"):
        await runtime.apply(manifest({"a": module(env={"X": 1}), "camera": module()}))
    assert runtime.module_reports()["a"].pid == pid


async def test_skip_unmapped_reports_a_module_without_command_as_stopped(make_runtime):
    runtime = make_runtime({"a": py(IDLE)}, skip_unmapped=True)
    await runtime.start(manifest({"a": module(), "camera": module()}))
    report = runtime.module_reports()["camera"]
    assert report.runtime_status is RuntimeStatus.STOPPED
    assert "no local command" in report.status_description


async def test_reported_modules_look_like_edge_agents_reported_section(make_runtime):
    runtime = make_runtime({"classifier": py(IDLE), "camera": py(IDLE)})
    await runtime.start(load_manifest(FIXTURE_MANIFEST))
    entry = runtime.reported_modules()["classifier"]
    assert entry["runtimeStatus"] == "running"
    assert entry["status"] == "running"
    assert entry["restartPolicy"] == "on-failure"
    assert entry["version"] == "1.0"
    assert entry["restartCount"] == 0
    assert entry["settings"]["image"] == "contosoacr.azurecr.io/classifier:0.1.0-amd64"
    assert "createOptions01" in entry["settings"]
    assert entry["lastStartTimeUtc"].endswith("Z")
    assert entry["pid"] == runtime.module_reports()["classifier"].pid
    assert "exitCode" not in entry


async def test_stop_stops_every_module_and_refuses_later_applies(make_runtime):
    runtime = make_runtime({"a": py(IDLE), "b": py(IDLE)})
    await runtime.start(manifest({"a": module(), "b": module()}))
    pids = [r.pid for r in runtime.module_reports().values()]
    await runtime.stop()
    assert all(pid is not None and not pid_alive(pid) for pid in pids)
    with pytest.raises(LocalRuntimeError):
        await runtime.apply(manifest({"a": module()}))
