"""From the device's storage to labels: frames captured by the real module into real Azurite
are pulled by device, time and policy (``dataset pull``), counted (``dataset stats``) and
labelled by the oracle (``label --oracle truth``), as an operator's commands do it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from classifier.local_run import classifier_on_local_hub
from cloud_tools.__main__ import main
from cloud_tools.dataset.captures import captures, read_labels
from edge_module.local_hub import LocalHub
from simulator.mqtt.testing import eventually
from tests.integration.capture_support import (
    EVERY_FRAME,
    azurite,
    capture_config,
    policy_counts,
    send_camera_frames,
)


async def test_captures_are_pulled_filtered_counted_and_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with azurite(tmp_path / "storage") as (storage, endpoint):
        hub = LocalHub({"capture": EVERY_FRAME})
        async with classifier_on_local_hub(
            capture_config(**storage.env(endpoint)), hub=hub
        ) as local:
            await send_camera_frames(local.hub, 0, 5)
            await eventually(
                lambda: policy_counts(hub.reported, "random").get("captured") == 5, 30, "captured"
            )
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", endpoint.connection_string())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(storage.ca_file))
        data = tmp_path / "data"

        def cli(*args: str) -> int:
            return main(list(args))

        assert await asyncio.to_thread(cli, "dataset", "pull", str(data), "--device", "other") == 0
        assert "pulled 0 capture(s)" in capsys.readouterr().out
        assert await asyncio.to_thread(cli, "dataset", "pull", str(data), "--policy", "margin") == 0
        assert "pulled 0 capture(s)" in capsys.readouterr().out
        pulled = ("dataset", "pull", str(data), "--device", "dock-7", "--since", "2020-01-01")
        assert await asyncio.to_thread(cli, *pulled) == 0
        assert "pulled 5 capture(s)" in capsys.readouterr().out
        assert await asyncio.to_thread(cli, *pulled) == 0
        assert "pulled 0 capture(s)" in capsys.readouterr().out  # already there
    assert len(captures(data)) == 5
    assert main(["label", str(data), "--oracle", "truth"]) == 0
    assert main(["dataset", "stats", str(data), "--json"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out[out.index("{") :])
    assert stats["captures"] == 5 and stats["labelled"] == 5
    assert stats["by_policy"] == {"random": 5} and stats["by_device"] == {"dock-7": 5}
    labels = read_labels(data)
    assert {r["label"] for r in labels.values()} <= {
        "circle",
        "square",
        "triangle",
        "star",
        "cross",
    }
