"""Model updates through the desired properties, in process: the hot swap, every failure path,
idempotent resyncs, restarts on the cache, crash-loop protection, rollback and live settings.

The module, its updater, downloader, cache and ONNX Runtime are real; the hub is in process.
tests/integration/test_model_update_e2e.py runs the same flows through the simulator with the
real SDKs and Azurite.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from classifier.engine import file_sha256
from classifier.model_spec import SelfTest
from classifier.model_update.cache import ModelCache
from classifier.model_update.signing import signed_message
from cloud_tools.model_file import embed_spec, read_spec
from simulator.mqtt.testing import eventually
from tests.integration.model_update_support import RED_JPEG, ModuleUnderTest, model_section
from tests.support.file_server import FileServer
from tests.support.tiny_models import (
    colour_spec,
    write_colour_model,
    write_incompatible_model,
    write_model_failing_on_batches,
    write_versioned_colour_model,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    return write_versioned_colour_model(tmp_path / "v1.onnx", "1.0.0")


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    return write_versioned_colour_model(tmp_path / "v2.onnx", "2.0.0", reversed_labels=True)


def labels_by_version(module: ModuleUnderTest) -> set[tuple[str, str]]:
    return {
        (d["model"]["version"], d["inferences"][0]["classification"]["tag"]["value"])
        for d in module.predictions()
    }


async def test_a_pushed_model_takes_over_while_frames_flow_and_no_frame_is_lost(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        m.start_camera(fps=100)
        await eventually(lambda: len(m.predictions()) >= 20, 30, "frames on v1")
        version = await m.push(model_section(v2, name="colour-test", version="2.0.0"))
        update = await m.wait_update(version, "active")
        await eventually(lambda: m.predictions()[-1]["model"]["version"] == "2.0.0", 30, "v2")
        switched = len(m.predictions())
        await eventually(lambda: len(m.predictions()) >= switched + 20, 30, "frames on v2")
        await m.stop_camera()
        await m.settle()
    assert update["target"]["sha256"] == file_sha256(v2)
    assert m.active["version"] == "2.0.0"
    assert m.active["source"] == "download"
    assert m.hub.reported["previousModel"]["version"] == "1.0.0"
    # every frame exactly one outcome, all of them predictions, from v1 and then v2
    assert set(m.outcomes_per_frame().values()) == {1}
    assert len(m.outcomes_per_frame()) == m.sent
    assert m.errors() == []
    assert labels_by_version(m) == {("1.0.0", "red"), ("2.0.0", "blue")}
    versions = [d["model"]["version"] for d in m.predictions()]
    assert versions == sorted(versions)  # one switch, never back


def _key() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, base64.b64encode(raw).decode()


async def _fails_with(
    m: ModuleUnderTest, section: dict[str, object], code: str
) -> dict[str, object]:
    version = await m.push(section)
    update = await m.wait_update(version, "failed", "rolled_back")
    assert update["error"]["code"] == code, update
    await m.send(3)
    await m.settle()
    assert m.active["version"] == "1.0.0"
    assert m.predictions()[-1]["model"]["version"] == "1.0.0"
    return update


async def test_each_failure_leaves_v1_serving_and_reports_its_own_code(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not an onnx protobuf" * 50)
    self_test_fails = write_colour_model(
        tmp_path / "bad-golden.onnx", replace(colour_spec(), version="golden")
    )
    _set_wrong_golden(self_test_fails)
    big = tmp_path / "big.onnx"
    big.write_bytes(bytes(300_000))
    async with ModuleUnderTest(v1, tmp_path / "cache", MODEL_MAX_BYTES="200000") as m:
        await _fails_with(m, model_section(v2) | {"sha256": "0" * 64}, "sha256_mismatch")
        await _fails_with(m, model_section(v2, size=5), "size_mismatch")
        await _fails_with(m, model_section(corrupt), "model_invalid")
        await _fails_with(
            m, model_section(write_incompatible_model(tmp_path / "i.onnx")), "model_incompatible"
        )
        await _fails_with(m, model_section(self_test_fails), "self_test_failed")
        await _fails_with(m, model_section(big), "too_large")
        missing = model_section(v2) | {"url": (tmp_path / "missing.onnx").as_uri()}
        await _fails_with(m, missing, "not_found")
        assert m.errors() == []
        cached = ModelCache.open(tmp_path / "cache").entries()
    assert cached == []  # nothing unverified or refused was kept


async def test_signatures_are_required_once_the_device_has_a_key(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    private, public = _key()
    other, _ = _key()
    sha = file_sha256(v2)

    def signed(key: Ed25519PrivateKey) -> str:
        return base64.b64encode(key.sign(signed_message(sha))).decode()

    env = {"MODEL_SIGNING_PUBLIC_KEY": public}
    async with ModuleUnderTest(v1, tmp_path / "cache", **env) as m:
        await _fails_with(m, model_section(v2), "signature_required")
        await _fails_with(m, model_section(v2, signature=signed(other)), "signature_invalid")
        version = await m.push(model_section(v2, signature=signed(private)))
        await m.wait_update(version, "active")
        assert m.active["version"] == "2.0.0"


async def test_not_enough_free_disk_refuses_the_download(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache", MODEL_MIN_FREE_BYTES=str(1 << 62)) as m:
        update = await _fails_with(m, model_section(v2), "insufficient_disk")
    assert "bytes are free" in str(update["error"])


async def test_an_invalid_document_changes_nothing_and_says_why(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        await m.hub.push_desired({"model": model_section(v2), "inference": {"top_k": 0}})
        await eventually(lambda: m.hub.reported.get("desired", {}).get("status") == "rejected", 10)
        await m.send(2)
        await m.settle()
        ack = m.hub.reported["desired"]
    assert "inference.top_k" in ack["reason"]
    assert m.active["version"] == "1.0.0"
    assert m.predictions()[-1]["model"]["version"] == "1.0.0"


async def test_live_settings_apply_to_the_next_frames_without_a_reload(
    tmp_path: Path, v1: Path
) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        await m.send(1)
        await m.settle()
        activated = m.active["activated_at"]  # read before the change
        version = await m.push(None, top_k=1, confidence_threshold=0.5)
        await m.wait_update(version, "active")  # what a reload would end with too
        await m.send(1)
        await m.settle()
        first, second = m.predictions()
        swaps = m.module.metrics.snapshot()["counters"].get("model_swaps", 0)
    assert len(first["inferences"]) == 3
    assert len(second["inferences"]) == 1
    assert m.hub.reported["inference"]["top_k"] == 1
    assert m.active["activated_at"] == activated  # same model, never reloaded
    assert swaps == 0


async def test_a_stale_document_is_ignored(tmp_path: Path, v1: Path, v2: Path) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        version = await m.push(model_section(v2))
        await m.wait_update(version, "active")
        acknowledged = m.hub.reported["desired"]
        # An older document asking for the built-in model, as a late resync could deliver.
        # Applied, it would be acknowledged before reconcile returns, then the reload begins.
        await m.module.updater.reconcile({"$version": version - 1, "model": None})
        await m.send(3)
        await m.settle()
        assert m.hub.reported["desired"] == acknowledged
        assert m.update["desiredVersion"] == version
        assert m.update["state"] == "active"
        assert m.active["version"] == "2.0.0"
        assert {p["model"]["version"] for p in m.predictions()} == {"2.0.0"}


async def test_a_resync_after_reconnect_neither_downloads_nor_reloads(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    with FileServer({"/v2.onnx": v2.read_bytes()}).running() as server:
        section = model_section(v2) | {"url": server.url("/v2.onnx")}
        async with ModuleUnderTest(v1, tmp_path / "cache", MODEL_ALLOW_HTTP="true") as m:
            version = await m.push(section)
            await m.wait_update(version, "active")
            activated = m.active["activated_at"]
            for _ in range(3):  # what the SDK does after each reconnect: the full document
                await m.module._on_desired(dict(m.hub.desired))
            swaps = m.module.metrics.snapshot()["counters"]["model_swaps"]
        assert len(server.behaviour.requests) == 1
    assert swaps == 1
    assert m.active["activated_at"] == activated


async def test_a_restart_without_network_serves_the_cached_model(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    with FileServer({"/v2.onnx": v2.read_bytes()}).running() as server:
        section = model_section(v2) | {"url": server.url("/v2.onnx")}
        async with ModuleUnderTest(v1, tmp_path / "cache", MODEL_ALLOW_HTTP="true") as m:
            version = await m.push(section)
            await m.wait_update(version, "active")
            await m.send(120)  # past probation: promoted into the cache's active role
            await m.settle()
        desired = dict(m.hub.desired)
    # the server is gone: a new process on the same cache, with the same twin
    again = ModuleUnderTest(v1, tmp_path / "cache", MODEL_ALLOW_HTTP="true")
    again.hub.desired = desired
    async with again as m2:
        await m2.send(2)
        await m2.settle()
        assert m2.active["version"] == "2.0.0"
        assert m2.active["source"] == "cache"
        assert m2.update["state"] == "active"
        assert m2.predictions()[-1]["model"]["version"] == "2.0.0"


async def test_a_cached_model_corrupted_on_disk_is_not_used(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        version = await m.push(model_section(v2))
        await m.wait_update(version, "active")
        await m.send(120)
        await m.settle()
        desired = dict(m.hub.desired)
    cached = ModelCache.open(tmp_path / "cache").model_path(file_sha256(v2))
    cached.write_bytes(cached.read_bytes()[:-1] + b"\x00")
    again = ModuleUnderTest(v1, tmp_path / "cache")
    again.hub.desired = desired
    async with again as m2:
        startup = m2.module.updater.startup
        # it started on the built-in model and said why ...
        assert startup.model.info.version == "1.0.0"
        assert [p.code.value for p in startup.problems] == ["cache_corrupt"]
        # ... and, the twin still asking for v2, fetched it again rather than trusting the file
        await m2.wait_update(version, "active")
        assert m2.active["version"] == "2.0.0"
        assert m2.active["source"] == "download"


async def test_a_model_that_killed_the_process_is_not_tried_again(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    sha = file_sha256(v2)
    cache = ModelCache.open(tmp_path / "cache")
    staged = cache.staging_path(sha)
    staged.write_bytes(v2.read_bytes())
    cache.admit(staged, sha, None, "2.0.0")
    cache.set_candidate(sha, desired_version=2)  # as left by a process that died loading it
    module = ModuleUnderTest(v1, tmp_path / "cache")
    module.hub.desired = {"model": model_section(v2), "$version": 2}
    async with module as m:
        update = await m.wait_update(2, "failed")
        await m.send(2)
        await m.settle()
        assert update["error"]["code"] == "crashed_while_loading"
        assert m.active["version"] == "1.0.0"
        version = await m.push(model_section(v2, version="2.0.1"))  # a new desired version
        await m.wait_update(version, "active")


async def test_rollback_puts_the_previous_model_back_until_the_desired_changes(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache", MODEL_PROBATION_FRAMES="1") as m:
        version = await m.push(model_section(v2))
        await m.wait_update(version, "active")
        await m.send(2)
        await m.settle()
        result = await m.hub.call_method("rollback", {})
        await m.send(2)
        await m.settle()
        assert result.status == 200
        assert result.payload["rolled_back_from"]["version"] == "2.0.0"
        assert m.update["state"] == "rolled_back"
        assert m.predictions()[-1]["model"]["version"] == "1.0.0"
        await m.module._on_desired(dict(m.hub.desired))  # a resync does not undo it
        assert m.active["version"] == "1.0.0"
        again = await m.push(model_section(v2, version="again"))
        await m.wait_update(again, "active")
        assert m.active["version"] == "2.0.0"


async def test_rollback_without_a_previous_model_is_refused(tmp_path: Path, v1: Path) -> None:
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        result = await m.hub.call_method("rollback", {})
    assert result.status == 409


async def test_a_model_failing_on_live_frames_falls_back_and_rescores_them(
    tmp_path: Path, v1: Path
) -> None:
    bad = write_model_failing_on_batches(tmp_path / "bad.onnx")
    async with ModuleUnderTest(v1, tmp_path / "cache", MAX_WAIT_MS="50") as m:
        version = await m.push(model_section(bad))
        await m.wait_update(version, "active")
        await m.send(16)  # arrives faster than it is scored: batches of more than one
        await m.settle()
        update = await m.wait_update(version, "rolled_back")
    assert update["error"]["code"] == "failed_on_live_frames"
    assert m.errors() == []
    assert set(m.outcomes_per_frame().values()) == {1}
    assert {d["model"]["version"] for d in m.predictions()} <= {"1.0.0", "batch-one"}
    assert m.active["version"] == "1.0.0"


async def test_a_transient_download_failure_is_retried_later(
    tmp_path: Path, v1: Path, v2: Path
) -> None:
    with FileServer({"/v2.onnx": v2.read_bytes()}).running() as server:
        server.behaviour.fail_first = 3  # all three attempts of the first try
        section = model_section(v2) | {"url": server.url("/v2.onnx")}
        env = {"MODEL_ALLOW_HTTP": "true", "MODEL_DOWNLOAD_ATTEMPTS": "3", "MODEL_RETRY_S": "0.2"}
        async with ModuleUnderTest(v1, tmp_path / "cache", **env) as m:
            version = await m.push(section)
            failed = await m.wait_update(version, "failed")
            await m.wait_update(version, "active")
    assert failed["error"]["code"] == "download_failed"


async def test_the_classify_method_scores_images_on_the_active_model(
    tmp_path: Path, v1: Path
) -> None:
    payload = {"red": base64.b64encode(RED_JPEG).decode(), "junk": "%%%"}
    async with ModuleUnderTest(v1, tmp_path / "cache") as m:
        result = await m.hub.call_method("classify", payload)
        unknown = await m.hub.call_method("reboot", {})
    assert result.status == 200
    assert result.payload["results"]["red"]["labels"][0]["label"] == "red"
    assert result.payload["results"]["junk"]["error"]["code"] == "bad_base64"
    assert unknown.status == 404
    assert "classify" in unknown.payload["methods"]
    assert m.outcomes() == 0  # method calls are not frames


def _set_wrong_golden(path: Path) -> None:
    """Embeds a golden red frame that claims to be blue."""
    spec = read_spec(path)
    golden = SelfTest(base64.b64encode(RED_JPEG).decode(), "blue", 0.5)
    embed_spec(path, replace(spec, self_test=golden))
