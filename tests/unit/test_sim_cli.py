"""``python -m simulator up``'s options: device ids and tags."""

from __future__ import annotations

import pytest

from simulator.cli.run import device_ids, parse_tags
from simulator.errors import SimulatorError


def test_one_device_keeps_its_name_and_more_are_numbered_as_wide_as_needed() -> None:
    assert device_ids(1, "edge-device") == ["edge-device"]
    assert device_ids(3, "cam") == ["cam-01", "cam-02", "cam-03"]
    assert device_ids(100, "d")[0] == "d-001" and device_ids(100, "d")[-1] == "d-100"


def test_no_devices_is_refused() -> None:
    with pytest.raises(SimulatorError):
        device_ids(0, "d")


def test_tags_come_as_name_value_pairs_in_one_or_many_options() -> None:
    assert parse_tags(["site=lab,ring=1", "demo = x"]) == {"site": "lab", "ring": "1", "demo": "x"}
    assert parse_tags(None) == {}


@pytest.mark.parametrize("bad", ["site", "=lab", "site=lab,"])
def test_a_tag_without_a_name_or_value_separator_is_refused(bad: str) -> None:
    with pytest.raises(SimulatorError, match="name=value"):
        parse_tags([bad])
