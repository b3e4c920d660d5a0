"""Reading edgeAgent's method payloads and log lines as edgeAgent does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.device.agent_methods.module_logs import parse_line, parse_time
from simulator.device.agent_methods.payloads import (
    ContentEncoding,
    ContentType,
    logs_request,
)
from simulator.errors import BadRequestError, RequestFailedError
from simulator.jsondoc import JsonObject

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def test_a_logs_request_takes_edge_agents_defaults_and_one_item_without_a_list() -> None:
    request = logs_request({"schemaVersion": "1.1", "items": {"id": "Class.*"}}, upload=False)
    assert (request.encoding, request.content_type) == (ContentEncoding.NONE, ContentType.TEXT)
    [item] = request.items
    assert item.id.search("classifier") and item.filter.tail is None
    assert request.sas_url is None


def test_filter_values_are_read_like_json_net_reads_them() -> None:
    request = logs_request(
        {
            "schemaVersion": "1.0",
            "items": [{"id": "m", "filter": {"tail": "10", "since": 1569600000, "loglevel": 3}}],
            "encoding": "GZIP",
            "contentType": "Json",
        },
        upload=False,
    )
    [item] = request.items
    assert (item.filter.tail, item.filter.since, item.filter.loglevel) == (10, "1569600000", 3)
    assert (request.encoding, request.content_type) == (ContentEncoding.GZIP, ContentType.JSON)


@pytest.mark.parametrize(
    "filter_",
    [{"tail": True}, {"tail": 1.5}, {"tail": -1}, {"loglevel": "high"}, {"regex": "("}],
)
def test_a_bad_filter_is_a_bad_request(filter_: JsonObject) -> None:
    with pytest.raises(BadRequestError, match="Error parsing command payload"):
        logs_request(
            {"schemaVersion": "1.0", "items": [{"id": "m", "filter": filter_}]}, upload=False
        )


def test_an_incompatible_schema_version_fails_as_edge_agent_fails_it() -> None:
    with pytest.raises(RequestFailedError, match="not compatible"):
        logs_request({"schemaVersion": "2.0", "items": []}, upload=False)
    with pytest.raises(RequestFailedError, match="Invalid logs upload request schema version 1"):
        logs_request({"schemaVersion": "1", "items": []}, upload=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-09-27T16:00:00+00:00", datetime(2019, 9, 27, 16, tzinfo=UTC)),
        ("2019-09-27T18:00:00.5+02:00", datetime(2019, 9, 27, 16, 0, 0, 500000, tzinfo=UTC)),
        ("2019-09-27T16:00:00Z", datetime(2019, 9, 27, 16, tzinfo=UTC)),
        ("1569600000", datetime(2019, 9, 27, 16, tzinfo=UTC)),
        ("90m", NOW - timedelta(minutes=90)),
        ("1 day", NOW - timedelta(days=1)),
        ("2 days 3 hours 2 minutes", NOW - timedelta(days=2, hours=3, minutes=2)),
        ("1h 20m", NOW - timedelta(hours=1, minutes=20)),
    ],
)
def test_since_and_until_take_edgelets_forms(text: str, expected: datetime) -> None:
    assert parse_time(text, "since", NOW) == expected


@pytest.mark.parametrize("text", ["soon", "2019-09-27T16:00:00", "10 parsecs", "", "5"])
def test_an_unreadable_time_fails_naming_the_parameter(text: str) -> None:
    if text == "5":  # a UNIX time, however small, is a time
        assert parse_time(text, "until", NOW) == datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC)
        return
    with pytest.raises(RequestFailedError, match="invalid parameter: until"):
        parse_time(text, "until", NOW)


@pytest.mark.parametrize(
    ("line", "level", "text"),
    [
        ("<3> 2026-12-06 12:00:00.123 +00:00 [ERR] m - boom", 3, "[ERR] m - boom"),
        ("<7> Traceback (most recent call last):", 7, "Traceback (most recent call last):"),
        ("no prefix at all", 6, "no prefix at all"),
        (
            "--- 2026-12-06T12:00:00.000+00:00 runtime: started",
            6,
            "--- 2026-12-06T12:00:00.000+00:00 runtime: started",
        ),
    ],
)
def test_log_lines_are_read_with_their_syslog_severity(line: str, level: int, text: str) -> None:
    parsed = parse_line(line)
    assert (parsed.level, parsed.text) == (level, text)
