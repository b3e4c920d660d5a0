# mypy: disallow-untyped-calls=False
"""The operator's command line end to end, as a user runs it: ``python -m simulator env`` for
the environment, then ``python -m cloud_tools`` processes against the simulator and Azurite."""

from __future__ import annotations

import base64
import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.engine import file_sha256
from classifier.model_update.signing import check_signature, parse_public_key
from simulator.local.tool_env import write_connection_info
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, REPO_ROOT, SDK_SOCKET_LEAK, template_manifest
from tests.integration.model_update_e2e_support import Stack, running_stack
from tests.support.cloud_tools_cli import run_cloud_tools
from tests.support.tiny_models import write_versioned_colour_model

pytestmark = [pytest.mark.slow, SDK_SOCKET_LEAK]


def tool_environment(stack: Stack) -> dict[str, str]:
    """What ``eval "$(python -m simulator env)"`` puts in a user's shell."""
    write_connection_info(stack.sim, stack.storage)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "--state-dir",
            str(stack.sim.settings.state_dir),
            "env",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=True,
    )
    env = {}
    for line in done.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await run_cloud_tools(env, *args)


async def test_upload_push_status_and_invoke_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = write_versioned_colour_model(tmp_path / "v1.onnx", "1.0.0")
    v2 = write_versioned_colour_model(tmp_path / "v2.onnx", "2.0.0", reversed_labels=True)
    async with running_stack(v1, monkeypatch) as stack:
        env = tool_environment(stack)
        assert set(env) >= {"IOTHUB_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING"}

        upload = await cli(env, "model", "upload", str(v2), "--json")
        assert upload.returncode == 0, upload.stderr
        uploaded = json.loads(upload.stdout)
        assert (uploaded["name"], uploaded["version"]) == ("colour-test", "2.0.0")
        assert "se=" in uploaded["url"] and "sp=r" in uploaded["url"]  # read-only, expiring

        push = await cli(
            env, "model", "push", "--device", DEVICE, "--model", str(v2), "--timeout", "120"
        )
        assert push.returncode == 0, push.stdout + push.stderr
        assert "active: colour-test 2.0.0" in push.stdout

        wrong = await cli(
            env,
            "model",
            "push",
            "--device",
            DEVICE,
            "--url",
            uploaded["url"],
            "--sha256",
            "0" * 64,
            "--timeout",
            "120",
        )
        assert wrong.returncode == 1
        assert "failed: sha256_mismatch" in wrong.stdout

        status = await cli(env, "model", "status", "--device", DEVICE, "--json")
        doc = json.loads(status.stdout)
        assert doc["model"]["version"] == "2.0.0"
        assert doc["modelUpdate"]["error"]["code"] == "sha256_mismatch"
        assert "?" not in doc["desired"]["model"]["url"]  # the SAS is not shown
        assert status.returncode == 1  # the last update failed

        invoke = await cli(
            env, "invoke", "--device", DEVICE, "--module", "classifier", "--method", "get_model"
        )
        assert invoke.returncode == 0, invoke.stderr
        assert json.loads(invoke.stdout)["payload"]["model"]["version"] == "2.0.0"
        missing = await cli(
            env, "invoke", "--device", DEVICE, "--module", "classifier", "--method", "reboot"
        )
        assert missing.returncode == 1
        assert json.loads(missing.stdout)["status"] == 404

        async with stack.camera(fps=20):
            await eventually(lambda: len(stack.outcomes()[1]) >= 3, 60, "predictions upstream")
        monitor = await cli(env, "monitor", "--module", "classifier", "--last", "3")
        assert monitor.returncode == 0, monitor.stderr
        lines = [json.loads(line) for line in monitor.stdout.splitlines()]
        assert len(lines) == 3
        assert {line["moduleId"] for line in lines} == {"classifier"}

        manifest = copy.deepcopy(template_manifest())
        del manifest["modulesContent"]["classifier"]  # keep the pushed model (see module-twin.md)
        agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
        agent["modules"]["classifier"]["env"]["TOP_K"] = {"value": "2"}
        path = tmp_path / "deployment.json"
        path.write_text(json.dumps(manifest))
        deploy = await cli(env, "deploy", "--device", DEVICE, "--manifest", str(path))
        assert deploy.returncode == 0, deploy.stderr
        # The hub answers once the twins hold it; the device's runtime then reconciles.
        await stack.sim.settled()
        runtime = stack.sim.device(DEVICE).runtime
        assert runtime.manifest is not None
        assert runtime.manifest.modules["classifier"].env["TOP_K"] == "2"
        path.write_text(json.dumps(manifest).replace('"2"', '"${TOP_K}"'))
        unexpanded = await cli(env, "deploy", "--device", DEVICE, "--manifest", str(path))
        assert unexpanded.returncode == 2
        assert "unexpanded" in unexpanded.stderr

    for result in (upload, push, wrong, status, invoke, monitor, deploy):
        for secret in ("SharedAccessKey=", "AccountKey="):
            assert secret not in result.stdout + result.stderr


async def test_keys_sign_what_a_device_with_the_public_key_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = write_versioned_colour_model(tmp_path / "v1.onnx", "1.0.0")
    v2 = write_versioned_colour_model(tmp_path / "v2.onnx", "2.0.0")
    made = await cli({}, "keys", "new", "--out", str(tmp_path / "keys"))
    assert made.returncode == 0, made.stderr
    public = made.stdout.split("MODEL_SIGNING_PUBLIC_KEY=")[1].strip()
    assert (tmp_path / "keys" / "model-signing.key").stat().st_mode & 0o077 == 0
    async with running_stack(v1, monkeypatch, MODEL_SIGNING_PUBLIC_KEY=public) as stack:
        env = tool_environment(stack)
        unsigned = await cli(env, "model", "push", "--device", DEVICE, "--model", str(v2))
        assert unsigned.returncode == 1
        assert "signature_required" in unsigned.stdout
        key = str(tmp_path / "keys" / "model-signing.key")
        signed = await cli(
            env, "model", "push", "--device", DEVICE, "--model", str(v2), "--sign-key", key
        )
        assert signed.returncode == 0, signed.stdout + signed.stderr
    signature = await cli({}, "keys", "sign", str(v2), "--key", key)
    assert signature.returncode == 0, signature.stderr
    check_signature(
        parse_public_key(public),
        file_sha256(v2),
        base64.b64decode(signature.stdout.strip()),
    )
