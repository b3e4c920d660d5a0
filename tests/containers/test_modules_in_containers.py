"""The repository's module images, built and pushed as an operator does (``cloud_tools build
--push`` to the simulator's registry), run as containers by the simulated runtime from the
deployment users deploy (base plus camera layer): predictions upstream, a model update
downloaded into the ``classifier-models`` named volume and still served after the container
is recreated with Blob Storage stopped, the metrics endpoint, and frames over edgeHub's
limit travelling as claim files between the two containers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest
from azure.iot.hub.models import ConfigurationContent
from prometheus_client.parser import text_string_to_metric_families

from simulator.cli.demo_update import SECOND_VERSION, push_second_version
from simulator.fleet import Fleet, FleetSettings, StartupDeployment
from simulator.local import startup
from simulator.local.containers import container_runtime, remove_volumes
from simulator.local.tool_env import blob_storage, write_connection_info
from simulator.mqtt import EDGEHUB_MAX_MESSAGE_BYTES
from simulator.mqtt.testing import eventually, random_loopback_host
from tests.containers.conftest import remove_pulled
from tests.integration.e2e_support import (
    CAMERA_LAYER,
    DEVICE,
    SDK_SOCKET_LEAK,
    TEMPLATE,
    configuration_manager,
    running_fleet,
    short_state_dir,
    wait_upstream,
)
from tests.integration.test_claim_check_e2e import first_frame_jpeg_bytes
from tests.support.container_engine import engine_or_skip
from tests.support.videos import make_video

pytestmark = [pytest.mark.containers, SDK_SOCKET_LEAK]

START_TIMEOUT_S = 180.0
METRICS_PORT = 9600


@asynccontextmanager
async def fleet_of_images(
    env: Mapping[str, Mapping[str, str]] | None = None,
    binds: Mapping[str, list[str]] | None = None,
) -> AsyncIterator[tuple[Fleet, docker.DockerClient, str]]:
    """The base and camera layer deployed from images built and pushed to a fresh registry;
    ``env`` and ``binds`` add to a module's environment and createOptions ``Binds``."""
    client = engine_or_skip()
    state_dir = short_state_dir()
    address = random_loopback_host()
    async with container_runtime(state_dir, address, [TEMPLATE, CAMERA_LAYER]) as runtime:
        deployments = startup.from_templates(
            TEMPLATE, [CAMERA_LAYER], variables=runtime.variables()
        )
        for module, values in (env or {}).items():
            for name, value in values.items():
                deployments = startup.set_module_env(deployments, module, name, value)
        deployments = _with_binds(deployments, binds or {})
        settings = _settings(state_dir, address, deployments)
        try:
            async with running_fleet(
                settings, runtime.modules(state_dir / "certs" / "ca.pem")
            ) as fleet:
                yield fleet, client, runtime.scope
        finally:
            remove_volumes(client, runtime.scope)
            remove_pulled(client, runtime.registry.server)
            client.close()
            shutil.rmtree(state_dir, ignore_errors=True)


def _settings(
    state_dir: Path, address: str, deployments: tuple[StartupDeployment, ...]
) -> FleetSettings:
    return FleetSettings(
        state_dir=state_dir,
        address=address,
        startup=deployments,
        module_stop_grace_s=5.0,
        report_interval_s=0.2,
    )


def _with_binds(
    deployments: tuple[StartupDeployment, ...], binds: Mapping[str, list[str]]
) -> tuple[StartupDeployment, ...]:
    """The deployments with more createOptions ``Binds`` for modules, wherever defined."""
    changed = []
    for deployment in deployments:
        content = json.loads(json.dumps(deployment.content))
        desired = content["$edgeAgent"].get("properties.desired") or {}
        for module, extra in binds.items():
            definitions = [content["$edgeAgent"].get(f"properties.desired.modules.{module}")]
            definitions.append((desired.get("modules") or {}).get(module))
            for definition in definitions:
                if isinstance(definition, dict):
                    settings = definition["settings"]
                    options = json.loads(settings.get("createOptions") or "{}")
                    host = options.setdefault("HostConfig", {})
                    host["Binds"] = [*host.get("Binds", []), *extra]
                    settings["createOptions"] = json.dumps(options)
        changed.append(replace(deployment, content=content))
    return tuple(changed)


def classifier_reported(fleet: Fleet) -> dict[str, Any]:
    return dict(fleet.device(DEVICE).link.reported("classifier"))


def container(client: docker.DockerClient, scope: str, module: str) -> Any:
    return client.containers.get(f"{scope}-{DEVICE}-{module}")


def scrape(address: str) -> dict[str, list[Any]]:
    url = f"http://{address}:{METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def module_log(fleet: Fleet, module: str) -> str:
    path = fleet.device(DEVICE).runtime.log_path(module)
    return path.read_text(errors="replace") if path.exists() else ""


async def test_the_demo_runs_on_containers_and_a_pushed_model_survives_recreation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with fleet_of_images() as (fleet, client, scope):
        try:
            await wait_upstream(
                fleet,
                5,
                module_id="classifier",
                output_name="predictions",
                timeout_s=START_TIMEOUT_S,
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n{module_log(fleet, 'classifier')[-3000:]}") from None
        address = fleet.device(DEVICE).address
        metrics = await asyncio.to_thread(scrape, address)
        first = container(client, scope, "classifier")
        async with blob_storage(fleet, 0) as storage:
            assert storage is not None, "Azurite is not installed (scripts/bootstrap.sh)"
            write_connection_info(fleet, storage.endpoint)
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fleet.ca_path))
            assert await push_second_version(fleet.settings.state_dir, DEVICE) == 0
        # Blob Storage is gone now: the model can only come from the volume.
        cm = await configuration_manager(fleet)
        content = _changed_env(fleet, "classifier", "DEPLOYMENT_NOTE", "recreated")
        await asyncio.to_thread(
            cm.apply_configuration_on_edge_device,
            DEVICE,
            ConfigurationContent(modules_content=content),
        )
        await eventually(
            lambda: _container_id(client, scope, "classifier") not in (None, first.id),
            60,
            "the classifier container recreated",
        )
        await eventually(
            lambda: (classifier_reported(fleet).get("model") or {}).get("source") == "cache",
            START_TIMEOUT_S,
            "the recreated classifier serving from its cache",
        )
        served = classifier_reported(fleet)["model"]
        seen = len(await wait_upstream(fleet, 1, module_id="classifier"))
        later = await wait_upstream(fleet, seen + 3, module_id="classifier", timeout_s=60)
        volume = client.volumes.get(f"{scope}-{DEVICE}-classifier-models")
        cached = [p.name for p in (Path(volume.attrs["Mountpoint"]) / "models").iterdir()]
    assert "classifier_frames_scored" in metrics
    assert served["version"] == SECOND_VERSION
    versions = {json.loads(m.message.body)["model"]["version"] for m in later[seen:]}
    assert versions == {SECOND_VERSION}
    assert any(served["sha256"] in name for name in cached), cached  # in the named volume


def _container_id(client: docker.DockerClient, scope: str, module: str) -> str | None:
    try:
        return str(container(client, scope, module).id)
    except docker.errors.NotFound:
        return None


def _changed_env(fleet: Fleet, module: str, name: str, value: str) -> dict[str, Any]:
    """The device's current deployment with one more variable for ``module``."""
    manifest = fleet.device(DEVICE).manifest
    assert manifest is not None
    content = json.loads(json.dumps(manifest.raw["modulesContent"]))
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    modules[module].setdefault("env", {})[name] = {"value": value}
    return dict(content)


async def test_frames_over_the_limit_travel_as_claim_files_between_the_containers(
    tmp_path: Path,
) -> None:
    frames = 8
    videos = tmp_path / "videos"
    videos.mkdir()
    video = make_video(videos / "hd.mp4", frames, fps=10, width=1920, height=1080, noise=40)
    os.chmod(videos, 0o755)
    os.chmod(video.path, 0o644)
    assert first_frame_jpeg_bytes(video.path) > EDGEHUB_MAX_MESSAGE_BYTES
    source = {
        "SOURCE_URL": "/videos/hd.mp4",
        "FPS": "0",
        "REALTIME": "false",
        "JPEG_QUALITY": "92",
        "WIDTH": "0",
        "HEIGHT": "0",
    }
    async with fleet_of_images(
        env={"framesource": source}, binds={"framesource": [f"{videos}:/videos:ro"]}
    ) as (fleet, client, scope):
        try:
            upstream = await wait_upstream(
                fleet, frames, module_id="classifier", timeout_s=START_TIMEOUT_S
            )
        except AssertionError as e:
            raise AssertionError(
                f"{e}\n{module_log(fleet, 'framesource')[-2000:]}\n{module_log(fleet, 'classifier')[-2000:]}"
            ) from None
        claims = Path(client.volumes.get(f"{scope}-{DEVICE}-frame-claims").attrs["Mountpoint"])
        await eventually(lambda: not any(claims.iterdir()), 30, "every claim file released")
        folder = claims.stat()
        source_log = module_log(fleet, "framesource")
    bodies = [json.loads(m.message.body) for m in upstream]
    assert {m.output_name for m in upstream} == {"predictions"}, bodies[:2]
    assert {b["frame"]["id"] for b in bodies} == {f"framesource-{i}" for i in range(1, frames + 1)}
    assert "could not be written" not in source_log and "too large" not in source_log
    # The claim folder is the images' shared group's (edge-frames, 10100), setgid.
    assert folder.st_gid == 10100 and folder.st_mode & 0o2070 == 0o2070
