"""The local runtime's pure rules: backoff, restart decisions, environment, change detection."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.deployment.manifest import DesiredStatus, ModuleSpec, RestartPolicy
from simulator.device.runtime import (
    EdgeRuntimeSettings,
    ModuleCommand,
    module_environment,
    new_generation_id,
)
from simulator.device.supervisor import BackoffPolicy, should_restart

SETTINGS = EdgeRuntimeSettings(
    iothub_hostname="hub.example",
    device_id="dev1",
    gateway_hostname="gw.example",
    workload_uri="http://127.0.0.1:1/",
)
SPEC = ModuleSpec(
    name="classifier",
    image="local/classifier:1",
    status=DesiredStatus.RUNNING,
    restart_policy=RestartPolicy.ALWAYS,
    env={"LEVEL": "manifest", "IOTEDGE_DEVICEID": "spoofed"},
    create_options={"Env": ["LEVEL=create-options", "FROM_OPTIONS=1", "malformed"]},
)


def test_edge_agent_default_backoff_restarts_at_once_then_doubles_to_five_minutes():
    policy = BackoffPolicy()
    assert [policy.delay_s(n) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]


def test_edge_agent_defaults_give_up_after_twenty_restarts_and_forgive_after_ten_minutes():
    policy = BackoffPolicy()
    assert policy.max_restarts == 20
    assert policy.stable_after_s == 600


@pytest.mark.parametrize(
    ("policy", "exit_code", "expected"),
    [
        (RestartPolicy.ALWAYS, 0, True),
        (RestartPolicy.ALWAYS, 1, True),
        (RestartPolicy.ON_FAILURE, 0, False),
        (RestartPolicy.ON_FAILURE, 137, True),
        (RestartPolicy.ON_UNHEALTHY, 2, True),
        (RestartPolicy.NEVER, 1, False),
    ],
)
def test_restart_decision_follows_the_policy(policy, exit_code, expected):
    assert should_restart(policy, exit_code) is expected


def test_environment_layers_manifest_over_create_options_and_runtime_over_both():
    env = module_environment(SETTINGS, SPEC, "123", ModuleCommand(["x"]), base={})
    assert env["LEVEL"] == "manifest"
    assert env["FROM_OPTIONS"] == "1"
    assert env["IOTEDGE_DEVICEID"] == "dev1"
    assert "malformed" not in env


def test_the_callers_extras_win_over_everything():
    command = ModuleCommand(["x"], env={"IOTEDGE_WORKLOADURI": "http://127.0.0.1:2/"})
    env = module_environment(SETTINGS, SPEC, "123", command, base={})
    assert env["IOTEDGE_WORKLOADURI"] == "http://127.0.0.1:2/"


def test_inherited_identity_variables_are_dropped():
    base = {"PATH": "/bin", "IOTEDGE_MODULEID": "other", "EdgeModuleCACertificateFile": "/ca"}
    env = module_environment(SETTINGS, SPEC, "123", ModuleCommand(["x"]), base=base)
    assert env["PATH"] == "/bin"
    assert env["IOTEDGE_MODULEID"] == "classifier"
    assert "EdgeModuleCACertificateFile" not in env


def test_inheritance_can_be_turned_off():
    command = ModuleCommand(["x"], inherit_env=False)
    env = module_environment(SETTINGS, SPEC, "123", command, base={"PATH": "/bin"})
    assert "PATH" not in env


@pytest.mark.parametrize(
    "change",
    [
        {"image": "local/classifier:2"},
        {"version": "2.0"},
        {"env": {"LEVEL": "other"}},
        {"create_options": {}},
        {"status": DesiredStatus.STOPPED},
        {"restart_policy": RestartPolicy.NEVER},
    ],
)
def test_a_definition_change_is_detected(change):
    assert not SPEC.same_definition(replace(SPEC, **change))


def test_startup_order_and_pull_policy_alone_are_not_a_definition_change():
    assert SPEC.same_definition(replace(SPEC, startup_order=1, image_pull_policy="never"))


def test_generation_ids_are_fresh_18_digit_strings():
    first, second = new_generation_id(), new_generation_id()
    assert first != second
    assert len(first) == 18
    assert first.isdigit()
