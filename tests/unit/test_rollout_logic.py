"""The rollout's judgement of a device from its twin, its canary choice, and fleet status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cloud_tools.errors import CliError
from cloud_tools.fleet_view import DeviceRow, render_table, summary
from cloud_tools.model_state import Progress, model_state
from cloud_tools.rollout import both, canary_devices, check_rollout

SHA = "a" * 64
OTHER = "b" * 64


def desired(sha: str = SHA, version: int = 5) -> dict[str, Any]:
    return {"model": {"sha256": sha, "url": "https://x/m.onnx"}, "$version": version}


def reported(state: str, *, seen: int = 5, target: str = SHA, active: str = SHA) -> dict[str, Any]:
    return {
        "model": {"sha256": active},
        "modelUpdate": {
            "state": state,
            "desiredVersion": seen,
            "target": {"sha256": target},
            "error": {"code": "sha256_mismatch", "reason": "digest differs"},
            "progress": {"percent": 40},
        },
    }


def test_a_twin_without_the_model_is_waiting_for_the_deployment() -> None:
    state = model_state(desired(OTHER), reported("active", active=OTHER), SHA)
    assert state.progress is Progress.WAITING


def test_a_report_for_an_older_desired_version_is_not_believed() -> None:
    state = model_state(desired(version=6), reported("failed", seen=5), SHA)
    assert state.progress is Progress.WAITING


def test_active_needs_the_model_itself_to_serve() -> None:
    assert model_state(desired(), reported("active"), SHA).progress is Progress.ACTIVE
    half = model_state(desired(), reported("active", active=OTHER), SHA)
    assert half.progress is Progress.UPDATING


@pytest.mark.parametrize("state", ["failed", "rolled_back"])
def test_a_failure_for_this_model_is_failed_with_the_modules_reason(state: str) -> None:
    judged = model_state(desired(), reported(state), SHA)
    assert judged.progress is Progress.FAILED
    assert judged.detail == f"{state}: sha256_mismatch: digest differs"


def test_a_rejected_desired_document_is_a_failure() -> None:
    twin = reported("active", seen=4) | {
        "desired": {"version": 5, "status": "rejected", "reason": "model.size: negative"}
    }
    assert model_state(desired(), twin, SHA).detail == "invalid_desired: model.size: negative"


def test_a_download_in_progress_shows_its_percentage() -> None:
    judged = model_state(desired(), reported("downloading"), SHA)
    assert (judged.progress, judged.detail) == (Progress.UPDATING, "downloading 40%")


def test_canaries_are_the_first_share_of_devices_by_id_and_at_least_one() -> None:
    devices = [f"d{i:02d}" for i in range(10, 0, -1)]
    assert canary_devices(devices, 20) == ["d01", "d02"]
    assert canary_devices(devices, 1) == ["d01"]
    assert canary_devices(devices, None) == []
    assert canary_devices(["only"], 50) == []  # a canary of every device is no canary


def test_a_canary_condition_narrows_the_target_condition() -> None:
    assert both("tags.site='x'", "deviceId IN ['a']") == "(tags.site='x') AND (deviceId IN ['a'])"
    assert both("*", "deviceId IN ['a']") == "deviceId IN ['a']"


@pytest.mark.parametrize(
    ("name", "priority", "canary"),
    [("Upper", 1, None), ("ok", -1, None), ("ok", 1, 0.0), ("ok", 1, 100.0)],
)
def test_what_iot_hub_would_refuse_is_refused_before_anything_is_uploaded(
    name: str, priority: int, canary: float | None
) -> None:
    with pytest.raises(CliError) as caught:
        check_rollout(name, priority, canary)
    assert caught.value.exit_code == 2


def row(
    device: str, version: str | None, state: str = "active", connected: bool = True
) -> DeviceRow:
    return DeviceRow(
        device_id=device,
        connected=connected,
        module_status="running",
        update_state=state,
        model_name="seed" if version else None,
        model_version=version,
        model_sha256=(SHA if version == "1.1.0" else OTHER) if version else None,
        provider="CPUExecutionProvider" if version else None,
        last_activity=dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC) if version else None,
        error=None,
    )


def test_fleet_status_is_a_table_with_one_row_per_device() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.UTC)
    lines = render_table([row("dev-1", "1.1.0"), row("device-two", None, "-")], now).splitlines()
    assert lines[0].split() == [
        "DEVICE", "CONN", "MODULE", "UPDATE", "MODEL", "SHA256", "PROVIDER", "LAST", "ACTIVITY"
    ]  # fmt: skip
    assert lines[1].split() == ["dev-1", "yes", "running", "active", "seed", "1.1.0", SHA[:12], "CPU", "30s", "ago"]  # fmt: skip
    assert lines[2].split() == ["device-two", "yes", "running", "-", "-", "-", "-", "never"]
    assert lines[1].index("yes") == lines[2].index("yes")  # columns line up


def test_the_summary_counts_models_failures_and_disconnected_devices() -> None:
    rows = [row("a", "1.1.0"), row("b", "1.1.0"), row("c", "1.0.0", "failed", connected=False)]
    assert summary(rows) == (
        f"3 device(s): 1 on seed 1.0.0 ({OTHER[:12]}), 2 on seed 1.1.0 ({SHA[:12]}), "
        "1 with a failed last update, 1 not connected"
    )
