"""The persistent model cache: verified files by digest, roles that survive a restart, bounded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from classifier.errors import ModelUpdateError, UpdateErrorCode
from classifier.model_update.cache import Failure, ModelCache


def staged(cache: ModelCache, content: bytes) -> tuple[Path, str]:
    sha = hashlib.sha256(content).hexdigest()
    path = cache.staging_path(sha)
    path.write_bytes(content)
    return path, sha


def test_an_admitted_model_is_found_again_by_a_new_process(tmp_path: Path) -> None:
    cache = ModelCache.open(tmp_path)
    path, sha = staged(cache, b"model one")
    cache.admit(path, sha, "m", "1")
    cache.set_roles(active=sha)
    again = ModelCache.open(tmp_path)
    assert again.role("active") == sha
    assert again.verified_path(sha) == again.model_path(sha)
    entry = again.describe(sha)
    assert entry is not None
    assert (entry.name, entry.version, entry.size) == ("m", "1", 9)
    assert not path.exists()  # moved, not copied


def test_a_model_corrupted_on_disk_is_detected_and_removed(tmp_path: Path) -> None:
    cache = ModelCache.open(tmp_path)
    path, sha = staged(cache, b"model one")
    cache.admit(path, sha, "m", "1")
    cache.set_roles(active=sha)
    cache.model_path(sha).write_bytes(b"model 0ne")  # one flipped byte
    with pytest.raises(ModelUpdateError) as e:
        cache.verified_path(sha)
    assert e.value.code is UpdateErrorCode.CACHE_CORRUPT
    assert not cache.has(sha)
    assert cache.role("active") is None


def test_only_the_models_with_a_role_are_kept(tmp_path: Path) -> None:
    cache = ModelCache.open(tmp_path)
    shas = []
    for n in range(4):
        path, sha = staged(cache, f"model {n}".encode())
        cache.admit(path, sha, "m", str(n))
        shas.append(sha)
    cache.set_roles(active=shas[3], previous=shas[2], candidate=shas[1])
    assert {e.sha256 for e in cache.entries()} == set(shas[1:])
    cache.set_candidate(None)
    assert {e.sha256 for e in cache.entries()} == {shas[3], shas[2]}
    assert sorted(p.stem for p in cache.models_dir.glob("*.onnx")) == sorted(shas[2:])


def test_a_partial_download_in_progress_survives_pruning(tmp_path: Path) -> None:
    cache = ModelCache.open(tmp_path)
    cache.staging_path("ee" * 32).write_bytes(b"half")
    cache.staging_path("ff" * 32).write_bytes(b"stale")
    cache.set_downloading("ee" * 32)
    cache.prune()
    assert cache.staging_path("ee" * 32).exists()
    assert not cache.staging_path("ff" * 32).exists()


def test_the_last_failure_and_candidate_outlive_the_process(tmp_path: Path) -> None:
    cache = ModelCache.open(tmp_path)
    path, sha = staged(cache, b"model")
    cache.admit(path, sha, None, None)
    cache.set_candidate(sha, desired_version=7)
    cache.set_failure(Failure(7, sha, "self_test_failed", "wrong label"))
    again = ModelCache.open(tmp_path)
    assert again.role("candidate") == sha
    assert again.candidate_version() == 7
    assert again.failure() == Failure(7, sha, "self_test_failed", "wrong label")
    again.set_failure(None)
    assert again.failure() is None


def test_a_cache_directory_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelUpdateError) as e:
        ModelCache.open(blocker / "cache")
    assert e.value.code is UpdateErrorCode.CACHE_UNAVAILABLE
