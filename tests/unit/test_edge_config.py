"""The device configuration files parse and agree with the deployment they prepare for."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from cloud_tools.manifest import join_create_options
from tests.conftest import REPO

CONFIG = REPO / "edge_config" / "config.toml.template"


def _edge_agent() -> dict[str, Any]:
    template = json.loads((REPO / "deployment.template.json").read_text())
    agent = template["modulesContent"]["$edgeAgent"]["properties.desired"]
    return dict(agent["systemModules"]["edgeAgent"])


def test_the_config_template_is_toml_with_manual_provisioning_and_an_edge_ca():
    config = tomllib.loads(CONFIG.read_text())
    assert config["provisioning"]["source"] == "manual"
    assert config["provisioning"]["connection_string"].startswith("HostName=")
    assert config["edge_ca"]["auto_generated_edge_ca_expiry_days"] > 0
    assert "hostname" not in config  # left to the machine, as the upstream template does


def test_the_config_template_documents_dps_and_an_own_ca_as_commented_alternatives():
    text = CONFIG.read_text()
    assert re.search(r'^# source = "dps"$', text, re.M)
    assert re.search(r'^# method = "symmetric_key"$', text, re.M)
    assert re.search(r"^# cert = \"file://", text, re.M)
    assert re.search(r'^# hostname = "', text, re.M)


def test_edge_agent_starts_as_the_deployment_runs_it():
    agent = tomllib.loads(CONFIG.read_text())["agent"]
    deployed = _edge_agent()
    assert agent["config"]["image"] == deployed["settings"]["image"]
    binds = agent["config"]["createOptions"]["HostConfig"]["Binds"]
    assert binds == deployed["settings"]["createOptions"]["HostConfig"]["Binds"]
    assert agent["env"]["storageFolder"] == deployed["env"]["storageFolder"]["value"]


def test_docker_rotates_container_logs():
    daemon = json.loads((REPO / "edge_config" / "daemon.json").read_text())
    assert daemon["log-driver"] == "local"
    assert daemon["log-opts"]["max-size"] and int(daemon["log-opts"]["max-file"]) >= 1


def test_the_base_binds_system_module_storage_to_the_host():
    template = json.loads((REPO / "deployment.template.json").read_text())
    system = template["modulesContent"]["$edgeAgent"]["properties.desired"]["systemModules"]
    for name in ("edgeAgent", "edgeHub"):
        folder = system[name]["env"]["storageFolder"]["value"]
        binds = system[name]["settings"]["createOptions"]["HostConfig"]["Binds"]
        assert any(b.startswith("/") and b.split(":")[1] == folder for b in binds), name
    assert join_create_options(
        {"createOptions": json.dumps(system["edgeHub"]["settings"]["createOptions"])}
    )["HostConfig"]["PortBindings"]
