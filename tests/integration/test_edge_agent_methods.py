# mypy: disallow-untyped-calls=False
"""edgeAgent's built-in direct methods on a simulated device, called as an operator or the
portal calls them: the real azure-iot-hub service SDK against the simulator, a real module
process logging through edge_module's syslog formatter."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from simulator.mqtt.testing import eventually
from tests.integration.e2e_support import DEVICE, SDK_SOCKET_LEAK
from tests.integration.edge_agent_methods_support import talking_device

pytestmark = [SDK_SOCKET_LEAK]


async def test_ping_answers_200_with_no_payload_whatever_the_name_case(monkeypatch):
    async with talking_device(monkeypatch) as device:
        assert await device.call("ping") == (200, None)
        assert await device.call("Ping", {"ignored": True}) == (200, None)


async def test_an_unknown_method_answers_400_naming_the_supported_ones(monkeypatch):
    async with talking_device(monkeypatch) as device:
        status, answer = await device.call("UploadSupportBundle", {"schemaVersion": "1.0"})
    assert status == 400
    assert answer["message"].startswith("Command 'UploadSupportBundle' not found.")
    assert "GetModuleLogs" in answer["message"] and "RestartModule" in answer["message"]


async def test_get_module_logs_returns_the_lines_as_the_module_wrote_them(monkeypatch):
    async with talking_device(monkeypatch) as device:
        [entry] = await device.logs()
    assert entry["id"] == "talker" and entry["payloadBytes"] is None
    lines = entry["payload"].splitlines()
    assert lines[0].startswith("<6> ") and lines[0].endswith("[INF] talker - started")
    assert "a line written without a severity" in lines
    assert any(line.startswith("<7> ") and "tick 3" in line for line in lines)


async def test_loglevel_keeps_the_lines_of_exactly_that_severity(monkeypatch):
    async with talking_device(monkeypatch) as device:
        errors = await device.text_lines(loglevel=3)
        warnings = await device.text_lines(loglevel=4)
        informational = await device.text_lines(loglevel=6)
    # The error and every line of its traceback, which carry the record's severity.
    assert errors[0].endswith("[ERR] talker - camera failed")
    assert any("RuntimeError: camera lost" in line for line in errors)
    assert all(line.startswith("<3> ") for line in errors)
    assert [line.split("] ", 1)[1] for line in warnings] == ["talker - disk almost full"]
    # A line without a prefix counts as informational, as edgeAgent reads it.
    assert informational[-1] == "a line written without a severity"
    assert len(informational) == 2


async def test_regex_matches_the_text_and_tail_keeps_the_last_lines(monkeypatch):
    async with talking_device(monkeypatch) as device:
        ticks = await device.text_lines(regex=r"tick \d+$", tail=4)
        # tail goes to the runtime with the request, before the level filter, as edgeAgent
        # hands it to the container engine: the last 3 lines are ticks, not errors.
        none = await device.text_lines(tail=3, loglevel=3)
    assert len(ticks) == 4 and all("tick" in line for line in ticks)
    numbers = [int(line.rsplit(" ", 1)[1]) for line in ticks]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] == 3
    assert none == []


async def test_json_records_carry_level_text_and_arrival_time_and_gzip_compresses(monkeypatch):
    async with talking_device(monkeypatch) as device:
        [plain] = await device.logs(contentType="json", regex="disk")
        [packed] = await device.logs(contentType="json", encoding="gzip", regex="disk")
        hub_name = device.sim.device(DEVICE).link.hub_host_name
    records = json.loads(plain["payload"])
    assert plain["payloadBytes"] is None
    assert json.loads(gzip.decompress(base64.b64decode(packed["payloadBytes"]))) == records
    assert packed["payload"] is None
    [record] = records
    assert record["iothub"] == hub_name
    assert (record["device"], record["id"], record["stream"]) == ("edge-device", "talker", "stdout")
    assert record["loglevel"] == 4
    assert record["text"] == "[WRN] talker - disk almost full"
    stamp = datetime.fromisoformat(record["timestamp"])
    assert timedelta(0) <= datetime.now(UTC) - stamp < timedelta(minutes=2)


async def test_since_and_until_cut_by_the_time_each_line_arrived(monkeypatch):
    async with talking_device(monkeypatch) as device:
        [entry] = await device.logs(contentType="json")
        records = json.loads(entry["payload"])
        middle = records[len(records) // 2]["timestamp"]
        since = json.loads((await device.logs(contentType="json", since=middle))[0]["payload"])
        until = json.loads((await device.logs(contentType="json", until=middle))[0]["payload"])
        recent = await device.text_lines(since="1h")
        future = await device.text_lines(since=int(datetime.now(UTC).timestamp()) + 3600)
    # Lines that arrived together share a stamp, so the cut is by stamp, not by position.
    from_middle = [r for r in records if r["timestamp"] >= middle]
    assert since[: len(from_middle)] == from_middle
    assert until == [r for r in records if r["timestamp"] <= middle]
    assert len(recent) >= len(records) and future == []


async def test_ids_are_case_insensitive_regexes_and_an_unmatched_id_adds_nothing(monkeypatch):
    async with talking_device(monkeypatch) as device:
        assert [e["id"] for e in await device.logs(item_id="TALK", tail=1)] == ["talker"]
        assert [e["id"] for e in await device.logs(item_id="all", tail=1)] == ["talker", "chatty"]
        both = await device.logs(item_id="t", tail=1)  # "t" is in both names
        assert [e["id"] for e in both] == ["talker", "chatty"]
        assert await device.logs(item_id="^nosuchmodule$") == []


async def test_more_logs_than_a_method_carries_are_refused_unless_gzip_makes_them_fit(
    monkeypatch,
):
    async with talking_device(monkeypatch) as device:
        await eventually(
            lambda: "line 199" in device.sim.device(DEVICE).runtime.log_path("chatty").read_text(),
            30,
            "the chatty module's 200 lines",
        )
        too_large = await device.call(
            "GetModuleLogs", {"schemaVersion": "1.0", "items": [{"id": "chatty"}]}
        )
        [packed] = await device.logs(item_id="chatty", encoding="gzip")
    assert too_large[0] == 400
    assert "The payload is too large for a direct method" in too_large[1]["message"]
    assert len(gzip.decompress(base64.b64decode(packed["payloadBytes"])).splitlines()) == 200


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (None, 400, "Error parsing command payload"),  # the SDK sends "" for no payload
        ([1, 2], 400, "Error parsing command payload"),
        ({"items": [{"id": "talker"}]}, 400, "'schemaVersion'"),
        ({"schemaVersion": "1.0"}, 400, "'items'"),
        ({"schemaVersion": "1.0", "items": [{"filter": {}}]}, 400, "'id'"),
        ({"schemaVersion": "1.0", "items": {"id": "("}}, 400, "Invalid pattern"),
        ({"schemaVersion": "1.0", "items": [], "encoding": "zip"}, 400, "encoding"),
        ({"schemaVersion": "1.0", "items": [{"id": "t", "filter": {"tail": "x"}}]}, 400, "tail"),
        ({"schemaVersion": "2.0", "items": []}, 500, "not compatible with the expected"),
        ({"schemaVersion": "one", "items": []}, 500, "Invalid logs upload request schema"),
        (
            {"schemaVersion": "1.0", "items": [{"id": "talker", "filter": {"since": "soon"}}]},
            500,
            "invalid parameter: since",
        ),
    ],
)
async def test_a_bad_get_module_logs_payload_is_answered_as_edge_agent_does(
    monkeypatch, payload, status, message
):
    async with talking_device(monkeypatch) as device:
        answer = await device.call("GetModuleLogs", payload)
        assert await device.call("ping") == (200, None)  # the agent carries on
    assert answer[0] == status, answer
    assert message in answer[1]["message"]


async def test_restart_module_restarts_it_and_the_agent_reports_the_restart(monkeypatch):
    async with talking_device(monkeypatch) as device:
        await eventually(lambda: "pid" in device.talker_report(), 10, "the talker's pid reported")
        before = device.talker_report()
        started_at = datetime.now(UTC)
        assert await device.call("RestartModule", {"schemaVersion": "1.0", "id": "talker"}) == (
            200,
            None,
        )
        await eventually(
            lambda: device.talker_report().get("pid") not in (None, before["pid"]),
            10,
            "the talker running again with a new pid",
        )
        after = device.talker_report()
        raw_log = device.sim.device(DEVICE).runtime.log_path("talker")
        await eventually(
            lambda: raw_log.read_text().count("talker - started") == 2, 10, "the second start"
        )
        started_lines = await device.text_lines(regex="started$")
    assert after["runtimeStatus"] == "running"
    assert datetime.fromisoformat(after["lastRestartTimeUtc"]) >= started_at
    assert after["restartCount"] == before["restartCount"]  # on request, not a crash
    assert len(started_lines) == 2  # its output from before the restart is kept


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"schemaVersion": "1.0", "id": "nosuch"}, 500, "Module nosuch not found in the current"),
        ({"schemaVersion": "1.0", "id": "edgeHub"}, 500, "played by the simulator"),
        ({"schemaVersion": "1.0"}, 400, "'id'"),
        ({"id": "talker"}, 400, "'schemaVersion'"),
        (None, 400, "Error parsing command payload"),  # the SDK sends "" for no payload
    ],
)
async def test_restart_module_refuses_an_unknown_module_or_a_bad_payload(
    monkeypatch, payload, status, message
):
    async with talking_device(monkeypatch) as device:
        before = device.talker_report().get("lastRestartTimeUtc")
        answer = await device.call("RestartModule", payload)
        assert device.talker_report().get("lastRestartTimeUtc") == before
    assert answer[0] == status, answer
    assert message in answer[1]["message"]
