"""The claim-check contract: deposit, redeem, verify, release, and the sweep that keeps the
shared volume from filling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edge_module.claim_check import (
    ClaimAlteredError,
    ClaimInvalidError,
    ClaimLimits,
    ClaimMissingError,
    ClaimReference,
    ClaimStore,
    ClaimTooLargeError,
)

JPEG = b"\xff\xd8\xff" + os.urandom(300_000)


def store(folder: Path, **limits: float) -> ClaimStore:
    return ClaimStore(folder, ClaimLimits(min_free_bytes=0, **limits))  # type: ignore[arg-type]


def test_a_deposited_frame_is_redeemed_verified_and_released(tmp_path: Path) -> None:
    producer, consumer = store(tmp_path), store(tmp_path)
    reference, evicted = producer.deposit(JPEG, "image/jpeg", "cam-1")
    parsed = ClaimReference.from_message_body(reference.to_message_body())
    assert parsed == reference and evicted == 0
    assert len(reference.to_message_body()) < 400
    assert consumer.redeem(parsed, max_bytes=1 << 20) == JPEG
    assert list(tmp_path.iterdir()) == []


def test_a_file_already_released_or_swept_is_missing(tmp_path: Path) -> None:
    reference, _ = store(tmp_path).deposit(JPEG, "image/jpeg", "cam-1")
    store(tmp_path).redeem(reference, 1 << 20)
    with pytest.raises(ClaimMissingError):
        store(tmp_path).redeem(reference, 1 << 20)


def test_an_altered_file_is_refused_by_size_and_by_digest(tmp_path: Path) -> None:
    reference, _ = store(tmp_path).deposit(JPEG, "image/jpeg", "cam-1")
    path = tmp_path / reference.name
    path.write_bytes(JPEG[:-1])
    with pytest.raises(ClaimAlteredError, match="bytes"):
        store(tmp_path).redeem(reference, 1 << 20)
    flipped = bytearray(JPEG)
    flipped[1000] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(ClaimAlteredError, match="sha256"):
        store(tmp_path).redeem(reference, 1 << 20)
    assert path.exists()  # left for the sweep, not released


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", ".hidden", "a/b.jpg", ""])
def test_a_reference_whose_name_could_leave_the_folder_is_invalid(name: str) -> None:
    body = ClaimReference("x.jpg", 10, "0" * 64, "image/jpeg").to_message_body()
    with pytest.raises(ClaimInvalidError):
        ClaimReference.from_message_body(body.replace(b'"x.jpg"', f'"{name}"'.encode()))


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'{"claimCheck": 1}', b'{"claimCheck": {"version": 2}}', b"x" * 5000]
)
def test_a_malformed_reference_is_invalid(body: bytes) -> None:
    with pytest.raises(ClaimInvalidError):
        ClaimReference.from_message_body(body)


def test_a_link_in_the_folder_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a frame")
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "frame.jpg").symlink_to(secret)
    reference = ClaimReference("frame.jpg", 11, "0" * 64, "image/jpeg")
    with pytest.raises(ClaimInvalidError):
        store(folder).redeem(reference, 1 << 20)


def test_a_reference_larger_than_the_consumer_takes_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    reference, _ = store(tmp_path).deposit(JPEG, "image/jpeg", "cam-1")
    with pytest.raises(ClaimTooLargeError):
        store(tmp_path).redeem(reference, max_bytes=1000)


def test_orphans_older_than_the_age_limit_are_swept(tmp_path: Path) -> None:
    producer = store(tmp_path, max_age_s=60)
    old, _ = producer.deposit(JPEG, "image/jpeg", "old")
    new, _ = producer.deposit(JPEG, "image/jpeg", "new")
    hour_ago = time.time() - 3600
    os.utime(tmp_path / old.name, (hour_ago, hour_ago))
    result = producer.sweep()
    assert (result.expired, result.evicted) == (1, 0)
    assert [p.name for p in tmp_path.iterdir()] == [new.name]


def test_a_deposit_past_the_budget_evicts_the_oldest_files_first(tmp_path: Path) -> None:
    producer = store(tmp_path, budget_bytes=3 * len(JPEG) + 10)
    names = []
    for i in range(3):
        reference, _ = producer.deposit(JPEG, "image/jpeg", f"f{i}")
        os.utime(tmp_path / reference.name, (1_000 + i, time.time() - 10 + i))
        names.append(reference.name)
    fourth, evicted = producer.deposit(JPEG, "image/jpeg", "f3")
    assert evicted == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[1:], fourth.name])
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= producer.limits.budget_bytes


def test_a_frame_larger_than_the_whole_budget_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClaimTooLargeError):
        store(tmp_path, budget_bytes=1000).deposit(JPEG, "image/jpeg", "big")
    assert list(tmp_path.iterdir()) == []
