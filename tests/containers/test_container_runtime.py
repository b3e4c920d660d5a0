"""The simulated runtime's container backend, with a small probe image: containers created
the way edgeAgent creates them, restarted under the restart policy with backoff, reported in
``$edgeAgent``, pulled with the deployment's credentials, recreated only when their definition
changes, and removed on stop (only the simulator's own)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import docker
import pytest

from cloud_tools.hub_service import HubService
from simulator.device.container_backend import OWNER_LABEL, SCOPE_LABEL
from simulator.fleet import Fleet
from simulator.local.containers import container_modules, remove_volumes, scope_for
from simulator.local.registry import RegistryEndpoint
from simulator.mqtt.testing import eventually
from tests.containers.conftest import push, remove_pulled
from tests.integration.e2e_support import (
    DEVICE,
    fleet_settings,
    running_fleet,
    short_state_dir,
)

pytestmark = pytest.mark.containers

SYSTEM = {
    "edgeAgent": {"type": "docker", "settings": {"image": "example.invalid/agent:1.5"}},
    "edgeHub": {
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "settings": {"image": "example.invalid/hub:1.5"},
    },
}


def manifest(
    image: str,
    registry: RegistryEndpoint,
    *,
    env: Mapping[str, str] | None = None,
    password: str | None = None,
    restart_policy: str = "always",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    create_options = {
        "HostConfig": {
            "Mounts": [{"Type": "volume", "Source": "probe-data", "Target": "/var/lib/probe"}],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
            "PortBindings": {"9600/tcp": [{"HostPort": "9600"}]},
        },
        "Env": ["FROM_CREATE_OPTIONS=yes", "SLEEP_S=3600"],
    }
    modules: dict[str, Any] = {
        "probe": {
            "version": "1.0",
            "type": "docker",
            "status": "running",
            "restartPolicy": restart_policy,
            "settings": {"image": image, "createOptions": json.dumps(create_options)},
            "env": {k: {"value": v} for k, v in (env or {}).items()},
        },
        **(extra or {}),
    }
    credentials = {
        "address": registry.server,
        "username": registry.username,
        "password": password or registry.password,
    }
    return {
        "modulesContent": {
            "$edgeAgent": {
                "properties.desired": {
                    "schemaVersion": "1.1",
                    "runtime": {
                        "type": "docker",
                        "settings": {
                            "minDockerVersion": "v1.25",
                            "registryCredentials": {"local": credentials},
                        },
                    },
                    "systemModules": SYSTEM,
                    "modules": modules,
                }
            },
            "$edgeHub": {
                "properties.desired": {
                    "schemaVersion": "1.1",
                    "routes": {},
                    "storeAndForwardConfiguration": {"timeToLiveSecs": 60},
                }
            },
        }
    }


@asynccontextmanager
async def fleet_on_containers(
    client: docker.DockerClient, document: Mapping[str, Any], registry: RegistryEndpoint
) -> AsyncIterator[Fleet]:
    state_dir = short_state_dir()
    scope = scope_for(state_dir)
    settings = fleet_settings(state_dir, document)
    modules = container_modules(client, scope, state_dir / "certs" / "ca.pem")
    try:
        async with running_fleet(settings, modules) as fleet:
            yield fleet
        assert client.containers.list(all=True, filters={"label": f"{SCOPE_LABEL}={scope}"}) == []
    finally:
        remove_volumes(client, scope)
        remove_pulled(client, registry.server)


def agent_module(fleet: Fleet, module: str) -> dict[str, Any]:
    reported: dict[str, Any] = dict(fleet.device(DEVICE).link.reported("$edgeAgent"))
    entry: dict[str, Any] = (reported.get("modules") or {}).get(module) or {}
    return entry


async def reported(fleet: Fleet, module: str, check: Any, what: str, timeout_s: float = 60.0):
    await eventually(lambda: check(agent_module(fleet, module)), timeout_s, what)
    return agent_module(fleet, module)


def log_text(fleet: Fleet, module: str) -> str:
    path = fleet.device(DEVICE).runtime.log_path(module)
    return path.read_text(errors="replace") if path.exists() else ""


async def test_a_container_gets_what_edge_agent_gives_it(
    engine: docker.DockerClient, probe_image: str, registry: RegistryEndpoint
) -> None:
    image = push(engine, probe_image, registry)
    async with fleet_on_containers(
        engine, manifest(image, registry, env={"LEVEL": "x"}), registry
    ) as fleet:
        entry = await reported(fleet, "probe", lambda m: m.get("runtimeStatus") == "running", "up")
        await eventually(lambda: "start number 1" in log_text(fleet, "probe"), 30, "probe output")
        container = engine.containers.get(f"{scope_for(fleet.settings.state_dir)}-{DEVICE}-probe")
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        env = dict(item.split("=", 1) for item in config["Env"])
        log = log_text(fleet, "probe")
    assert env["FROM_CREATE_OPTIONS"] == "yes" and env["LEVEL"] == "x"
    assert env["IOTEDGE_MODULEID"] == "probe" and env["IOTEDGE_DEVICEID"] == DEVICE
    assert env["IOTEDGE_WORKLOADURI"] == "unix:///var/run/iotedge/workload.sock"
    assert "workload socket connects" in log, log
    assert f"edgeHub resolves to {fleet.device(DEVICE).address}" in log, log
    assert "uid=10001" in log  # the image's own user
    assert config["Labels"][OWNER_LABEL] == "Microsoft.Azure.Devices.Edge.Agent"
    assert config["Labels"]["net.azure-devices.edge.restartPolicy"] == "always"
    assert config["Image"] == image
    assert host["NetworkMode"] == "host" and not host.get("PortBindings")
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert host["RestartPolicy"]["Name"] == "no"  # the runtime restarts, as edgeAgent does
    assert entry["settings"]["image"] == image
    assert entry["lastStartTimeUtc"].startswith(container.attrs["State"]["StartedAt"][:19])


async def test_a_module_that_exits_non_zero_is_restarted_with_backoff_and_reported(
    engine: docker.DockerClient, probe_image: str, registry: RegistryEndpoint
) -> None:
    image = push(engine, probe_image, registry)
    crashing = manifest(image, registry, env={"SLEEP_S": "0.5", "EXIT_CODE": "3"})
    async with fleet_on_containers(engine, crashing, registry) as fleet:
        entry = await reported(
            fleet,
            "probe",
            lambda m: m.get("statusDescription", "").endswith("restarting in 10 s"),
            "a restart at once, then backoff",
        )
        log = log_text(fleet, "probe")
    assert entry["exitCode"] == 3
    # The simulator's cool-off (docs/fleet.md): the first restart at once, then 10 s.
    assert entry["statusDescription"] == "exited with 3; restarting in 10 s", entry
    assert entry["runtimeStatus"] == "backoff" and entry["restartCount"] == 1
    # The same container restarted: its named volume counts the starts.
    assert "start number 2" in log, log


async def test_an_image_that_cannot_be_pulled_is_reported_while_other_modules_run(
    engine: docker.DockerClient, probe_image: str, registry: RegistryEndpoint
) -> None:
    image = push(engine, probe_image, registry)
    good = manifest(image, registry)["modulesContent"]["$edgeAgent"]["properties.desired"]
    missing_tag = {
        "missing": {
            **good["modules"]["probe"],
            "settings": {"image": image.replace(":1", ":no-such-tag"), "createOptions": "{}"},
        }
    }
    document = manifest(image, registry, extra=missing_tag)
    async with fleet_on_containers(engine, document, registry) as fleet:
        missing = await reported(
            fleet, "missing", lambda m: "cannot pull" in m.get("statusDescription", ""), "pull"
        )
        probe = agent_module(fleet, "probe")
    assert "not found" in missing["statusDescription"] or "unknown" in missing["statusDescription"]
    assert missing["runtimeStatus"] in ("backoff", "failed")
    assert probe["runtimeStatus"] == "running"


async def test_a_wrong_registry_password_is_reported_with_the_reason(
    engine: docker.DockerClient, probe_image: str, registry: RegistryEndpoint
) -> None:
    image = push(engine, probe_image, registry)
    document = manifest(image, registry, password="not-the-password")
    async with fleet_on_containers(engine, document, registry) as fleet:
        entry = await reported(
            fleet, "probe", lambda m: "cannot pull" in m.get("statusDescription", ""), "refusal"
        )
    assert (
        "unauthorized" in entry["statusDescription"]
        or "authentication" in (entry["statusDescription"])
    ), entry
    assert entry["exitCode"] == 125


async def test_only_a_changed_definition_recreates_the_container_and_stop_removes_only_ours(
    engine: docker.DockerClient, probe_image: str, registry: RegistryEndpoint
) -> None:
    image = push(engine, probe_image, registry)
    # Another simulator's container, labelled as edgeAgent labels its own.
    labels = {OWNER_LABEL: "Microsoft.Azure.Devices.Edge.Agent", SCOPE_LABEL: "edgesim-other"}
    bystander = engine.containers.create(probe_image, network_mode="none", labels=labels)
    try:
        async with fleet_on_containers(engine, manifest(image, registry), registry) as fleet:
            device = fleet.device(DEVICE)
            await reported(fleet, "probe", lambda m: m.get("runtimeStatus") == "running", "up")
            first = device.runtime.instance("probe")
            assert first is not None
            first_id = first.identity
            same = await device.runtime.apply(_parsed(manifest(image, registry)))
            assert same.unchanged == ("probe",)
            assert device.runtime.instance("probe") is first
            changed = await device.runtime.apply(
                _parsed(manifest(image, registry, env={"CHANGED": "1"}))
            )
            assert changed.recreated == ("probe",)
            second = device.runtime.instance("probe")
            assert second is not None and second.identity != first_id
            await asyncio.sleep(0)
        bystander.reload()
        assert bystander.status == "created"  # not ours: left alone
    finally:
        bystander.remove(force=True)


def _parsed(document: Mapping[str, Any]) -> Any:
    from simulator.deployment.manifest import parse_manifest

    return parse_manifest(document)


async def test_edge_agent_methods_read_logs_from_the_container_and_restart_it(
    engine: docker.DockerClient,
    probe_image: str,
    registry: RegistryEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = push(engine, probe_image, registry)
    async with fleet_on_containers(engine, manifest(image, registry), registry) as fleet:
        await eventually(lambda: "start number 1" in log_text(fleet, "probe"), 60, "probe up")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fleet.ca_path))
        hub = HubService(fleet.hub_connection_string())

        async def call(method: str, payload: Any) -> tuple[int, Any]:
            return await asyncio.to_thread(hub.invoke, DEVICE, "$edgeAgent", method, payload, 60)

        logs_request = {
            "schemaVersion": "1.0",
            "items": [{"id": "^probe$", "filter": {"tail": 2}}],
            "encoding": "none",
            "contentType": "json",
        }
        status, answer = await call("GetModuleLogs", logs_request)
        assert status == 200, answer
        [entry] = answer
        before = container_of(engine, fleet, "probe")
        status, restarted = await call("RestartModule", {"schemaVersion": "1.0", "id": "probe"})
        assert status == 200, restarted
        await eventually(lambda: "start number 2" in log_text(fleet, "probe"), 60, "restarted")
        after = container_of(engine, fleet, "probe")
        status, _ = await call("ping", None)
    assert entry["id"] == "probe"
    assert [record["text"] for record in json.loads(entry["payload"])] == [
        "probe: edgeHub resolves to " + fleet.device(DEVICE).address,
        "probe: start number 1",
    ]
    # The same container restarted (its id kept, its volume counting), not a new one.
    assert after.id == before.id
    assert status == 200


def container_of(client: docker.DockerClient, fleet: Fleet, module: str) -> Any:
    return client.containers.get(f"{scope_for(fleet.settings.state_dir)}-{DEVICE}-{module}")


async def test_a_container_removed_behind_the_runtimes_back_is_created_again(
    engine: docker.DockerClient, probe_image: str, registry: RegistryEndpoint
) -> None:
    image = push(engine, probe_image, registry)
    async with fleet_on_containers(engine, manifest(image, registry), registry) as fleet:
        await eventually(lambda: "start number 1" in log_text(fleet, "probe"), 60, "probe up")
        first = container_of(engine, fleet, "probe")
        first.remove(force=True)
        # The named volume outlives the container: the new one counts on from it.
        await eventually(lambda: "start number 2" in log_text(fleet, "probe"), 60, "recreated")
        second = container_of(engine, fleet, "probe")
        await reported(fleet, "probe", lambda m: m.get("runtimeStatus") == "running", "running")
    assert second.id != first.id
