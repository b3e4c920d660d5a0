# mypy: disallow-untyped-calls=False
"""Model delivery end to end: the real classifier process on the simulator, models in Azurite,
pushed through the module twin with the real service SDKs, frames from a real SDK camera."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from classifier.engine import file_sha256
from classifier.model_spec import SelfTest
from classifier.model_update.signing import signed_message
from cloud_tools.model_file import embed_spec, read_spec
from cloud_tools.model_storage import UploadedModel
from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, SDK_SOCKET_LEAK
from tests.integration.model_update_e2e_support import Stack, running_stack
from tests.integration.model_update_support import RED_JPEG
from tests.support.tcp_proxy import CutPolicy, TcpProxy
from tests.support.tiny_models import (
    colour_spec,
    write_colour_model,
    write_incompatible_model,
    write_versioned_colour_model,
)

pytestmark = [pytest.mark.slow, SDK_SOCKET_LEAK]


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    return write_versioned_colour_model(tmp_path / "v1.onnx", "1.0.0")


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    return write_versioned_colour_model(tmp_path / "v2.onnx", "2.0.0", reversed_labels=True)


def _signer() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, base64.b64encode(raw).decode()


def _sign(key: Ed25519PrivateKey, sha256: str) -> str:
    return base64.b64encode(key.sign(signed_message(sha256))).decode()


async def test_a_model_pushed_while_frames_flow_takes_over_and_every_frame_gets_one_prediction(
    tmp_path: Path, v1: Path, v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(v1, monkeypatch) as stack:
        uploaded = await stack.upload(v2)
        async with stack.camera(fps=20):
            await eventually(lambda: len(stack.outcomes()[1]) >= 20, 60, "frames on v1")
            pushed_at = time.monotonic()
            version = await stack.push_uploaded(uploaded, name="colour-test", version="2.0.0")
            await stack.wait_update(version, "active")
            swap_s = time.monotonic() - pushed_at
            await eventually(
                lambda: stack.outcomes()[1][-1]["model"]["version"] == "2.0.0", 60, "v2 frames"
            )
            on_v2 = len(stack.outcomes()[1])
            await eventually(lambda: len(stack.outcomes()[1]) >= on_v2 + 20, 60, "more v2 frames")
        await stack.settle()
        per_frame, predictions = stack.outcomes()
    print(f"\nswap: pushed -> active in {swap_s:.2f} s; {len(stack.sent)} frames sent")
    assert per_frame.keys() == set(stack.sent)
    assert set(per_frame.values()) == {1}  # exactly one outcome per frame
    assert len(predictions) == len(stack.sent)  # and every one a prediction
    labels = {
        (p["model"]["version"], p["inferences"][0]["classification"]["tag"]["value"])
        for p in predictions
    }
    assert labels == {("1.0.0", "red"), ("2.0.0", "blue")}
    versions = [p["model"]["version"] for p in sorted(predictions, key=lambda p: p["frame"]["id"])]
    assert versions == sorted(versions)


async def test_each_failure_leaves_v1_serving_with_its_own_error(
    tmp_path: Path, v1: Path, v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, public = _signer()
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not an onnx protobuf" * 50)
    incompatible = write_incompatible_model(tmp_path / "incompatible.onnx")
    golden = write_colour_model(tmp_path / "golden.onnx", replace(colour_spec(), version="golden"))
    spec = read_spec(golden)
    embed_spec(
        golden, replace(spec, self_test=SelfTest(base64.b64encode(RED_JPEG).decode(), "blue", 0.5))
    )
    big = write_colour_model(
        tmp_path / "big.onnx", replace(colour_spec(), version="big", info={"pad": "x" * 300_000})
    )
    medium_path = write_colour_model(
        tmp_path / "medium.onnx",
        replace(colour_spec(), version="medium", info={"pad": "x" * 120_000}),
    )
    env = {
        "MODEL_SIGNING_PUBLIC_KEY": public,
        "MODEL_MAX_BYTES": "200000",
        "MODEL_DOWNLOAD_ATTEMPTS": "2",
    }
    async with running_stack(v1, monkeypatch, **env) as stack:
        good = await stack.upload(v2)

        async def fails(expected: str, **model: object) -> None:
            version = await stack.push(**model)
            update = await stack.wait_update(version, "failed")
            assert update["error"]["code"] == expected, update
            assert stack.active()["version"] == "1.0.0"

        signed = {"url": good.url, "sha256": good.sha256, "signature": _sign(key, good.sha256)}
        await fails(
            "sha256_mismatch", **(signed | {"sha256": "0" * 64, "signature": _sign(key, "0" * 64)})
        )
        await fails("signature_required", **(signed | {"signature": None}))
        await fails(
            "signature_invalid", **(signed | {"signature": _sign(_signer()[0], good.sha256)})
        )
        expired = await stack.upload(v2, expiry_hours=-1)
        await fails("sas_expired", **(signed | {"url": expired.url}))
        missing = _sas_url(stack, "nothing/here.onnx")  # a valid SAS for a blob never written
        await fails("not_found", **(signed | {"url": missing}))
        # A link that drops every transfer after 40 kB (past TLS set-up and headers).
        medium = await stack.upload(medium_path)
        proxy = await TcpProxy(
            stack.storage.host, stack.storage.port, CutPolicy(after_bytes=40_000)
        ).start(stack.storage.host)
        try:
            cut = medium.url.replace(f":{stack.storage.port}/", f":{proxy.port}/")
            sig = _sign(key, medium.sha256)
            await fails("truncated", url=cut, sha256=medium.sha256, signature=sig)
        finally:
            await proxy.stop()
        for path, code in (
            (corrupt, "model_invalid"),
            (incompatible, "model_incompatible"),
            (golden, "self_test_failed"),
            (big, "too_large"),
        ):
            up = await stack.upload(path) if path != corrupt else None
            if up is None:  # not a model: upload it as a plain blob through the same code path
                up = await _upload_bytes(stack, path)
            await fails(code, url=up.url, sha256=up.sha256, signature=_sign(key, up.sha256))
        # the module still scores on v1
        async with stack.camera(fps=20):
            await eventually(lambda: len(stack.outcomes()[1]) >= 5, 60, "frames")
        await stack.settle()
        assert {p["model"]["version"] for p in stack.outcomes()[1]} == {"1.0.0"}


def _sas_url(stack: Stack, blob: str) -> str:
    expires = datetime.now(UTC) + timedelta(hours=1)
    sas = generate_blob_sas(
        stack.storage.account,
        "models",
        blob,
        account_key=stack.storage.key,
        permission=BlobSasPermissions(read=True),
        expiry=expires,
    )
    return f"{stack.storage.url}/models/{blob}?{sas}"


async def _upload_bytes(stack: Stack, path: Path) -> UploadedModel:
    """Uploads a file that is not a self-describing model (upload_model refuses those)."""

    def upload() -> UploadedModel:
        service = BlobServiceClient.from_connection_string(stack.storage.connection_string())
        container = service.get_container_client("models")
        if not container.exists():
            container.create_container()
        container.upload_blob(path.name, path.read_bytes(), overwrite=True)
        url = _sas_url(stack, path.name)
        expires = datetime.now(UTC) + timedelta(hours=1)
        return UploadedModel(
            url, file_sha256(path), path.stat().st_size, path.stem, "?", expires, path.name
        )

    return await asyncio.to_thread(upload)


async def test_not_enough_disk_is_refused_after_a_redeployment_changes_the_reserve(
    tmp_path: Path, v1: Path, v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_stack(v1, monkeypatch, MODEL_MIN_FREE_BYTES=str(1 << 62)) as stack:
        uploaded = await stack.upload(v2)
        version = await stack.push_uploaded(uploaded)
        update = await stack.wait_update(version, "failed")
    assert update["error"]["code"] == "insufficient_disk"


async def test_a_change_made_while_stopped_applies_at_start_and_the_cache_serves_without_storage(
    tmp_path: Path, v1: Path, v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v3 = write_versioned_colour_model(tmp_path / "v3.onnx", "3.0.0")
    async with running_stack(v1, monkeypatch) as stack:
        runtime = stack.sim.device(DEVICE).runtime
        assert runtime is not None and runtime.manifest is not None
        first = await stack.push_uploaded(await stack.upload(v2))
        await stack.wait_update(first, "active")
        async with stack.camera(fps=20):  # past probation: v2 becomes the cached active model
            await eventually(lambda: len(stack.outcomes()[1]) >= 20, 60, "frames on v2")
        await stack.settle()

        await _set_status(stack, "stopped")
        uploaded = await stack.upload(v3)
        changed = await stack.push_uploaded(uploaded)  # the module is not running
        await asyncio.sleep(1)
        assert stack.update()["desiredVersion"] == first
        await _set_status(stack, "running")
        await stack.wait_update(changed, "active", timeout_s=90)
        assert stack.active()["version"] == "3.0.0"
        async with stack.camera(fps=20):
            await eventually(lambda: len(stack.outcomes()[1]) >= 40, 60, "frames on v3")
        await stack.settle()

        # Blob Storage goes away; a restarted module starts on its cached model.
        storage_down = stack.storage.url
        await stack.storage_server.stop()
        await _set_status(stack, "stopped")
        restarted = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        await _set_status(stack, "running")

        def resynced() -> bool:
            # a report of the new process (the twin still holds the old one's), after its
            # resync found nothing to fetch
            update = stack.update()
            return update.get("updatedAt", "") > restarted and update.get("state") == "active"

        await eventually(resynced, 90, "the restarted module's resync")
        assert stack.active()["source"] == "cache"
        assert stack.active()["version"] == "3.0.0"
        result = await asyncio.to_thread(stack.hub.invoke, DEVICE, "classifier", "rollback", {}, 30)
        assert result[0] == 200, result
        assert result[1]["active"]["version"] == "2.0.0"  # reloaded from the cache
        assert stack.update()["state"] == "rolled_back"
        print(f"\nstorage at {storage_down} stopped; restart and rollback served from the cache")


async def _set_status(stack: Stack, status: str) -> None:
    """Redeploys with the classifier's desired status changed, as an operator would."""
    import copy

    from tests.integration.e2e_support import template_manifest

    manifest = copy.deepcopy(template_manifest())
    # Without the classifier's own section: a deployment that names a module's desired
    # properties replaces them, which would undo the model pushed to the twin.
    del manifest["modulesContent"]["classifier"]
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    agent["modules"]["classifier"]["status"] = status
    await stack.sim.deploy(DEVICE, manifest)
    if status == "running":
        await eventually(lambda: stack.reported().get("state") == "running", 90, "running again")
