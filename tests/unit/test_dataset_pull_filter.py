"""Which blobs ``dataset pull`` takes, read from their names alone, and where they land."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_tools.dataset.pull import PullFilter, _inside, parse_time
from cloud_tools.errors import CliError

NAME = "dock-7/2026-12-06/201502.123_margin_cam-4-1a2b3c4d.json"


def test_a_capture_is_taken_by_policy_and_time_from_its_name() -> None:
    assert PullFilter().wants(NAME)
    assert PullFilter(policies=frozenset({"margin"})).wants(NAME)
    assert not PullFilter(policies=frozenset({"random"})).wants(NAME)
    assert PullFilter(since=parse_time("2026-12-06T20:15:02")).wants(NAME)
    assert not PullFilter(since=parse_time("2026-12-06T20:15:03Z")).wants(NAME)
    assert not PullFilter(until=parse_time("2026-12-06")).wants(NAME)
    assert PullFilter(until=parse_time("2026-12-07")).wants(NAME)


def test_blobs_that_are_not_captures_are_left_alone() -> None:
    assert not PullFilter().wants("models/seed/1.0.0/abc.onnx")
    assert not PullFilter().wants("dock-7/notes.json")


def test_a_blob_name_that_would_leave_the_folder_is_refused(tmp_path: Path) -> None:
    assert _inside(tmp_path, NAME) == tmp_path / NAME
    for bad in ("../escape.json", "dock-7/../../x.json", "/etc/passwd"):
        with pytest.raises(CliError, match="cannot be a path"):
            _inside(tmp_path, bad)


def test_a_time_that_is_not_iso_is_a_usage_error() -> None:
    with pytest.raises(CliError) as caught:
        parse_time("yesterday")
    assert caught.value.exit_code == 2


def test_a_frame_id_with_underscores_does_not_change_the_policy_read() -> None:
    name = "dock-7/2026-12-06/201502.123_random_dock_cam-42-ab12cd34.json"
    assert PullFilter(policies=frozenset({"random"})).wants(name)
    low = "dock-7/2026-12-06/201502.123_low_confidence_my_cam-1-ab12cd34.json"
    assert PullFilter(policies=frozenset({"low_confidence"})).wants(low)
