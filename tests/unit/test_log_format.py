"""Module log lines carry the syslog severity IoT Edge's log retrieval filters on."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from edge_module.log_format import SyslogSeverityFormatter

# edgeAgent's LogMessageParser pattern (Azure/iotedge, edge-agent Logs): severity, timestamp.
IOT_EDGE_LINE = re.compile(
    r"^(<(?P<level>\d)>)?\s*((?P<timestamp>\d{4}-\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}.\d{3}\s[+-]\d{2}:\d{2})\s)?"
)


def record(level: int, message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("classifier.app", level, __file__, 1, message, (), exc_info)


@pytest.mark.parametrize(
    ("level", "severity", "short"),
    [
        (logging.DEBUG, "7", "DBG"),
        (logging.INFO, "6", "INF"),
        (logging.WARNING, "4", "WRN"),
        (logging.ERROR, "3", "ERR"),
        (logging.CRITICAL, "2", "CRT"),
    ],
)
def test_each_level_gets_its_syslog_severity_and_a_parseable_timestamp(level, severity, short):
    line = SyslogSeverityFormatter().format(record(level, "scoring 'frames'"))
    match = IOT_EDGE_LINE.match(line)
    assert match is not None and match["level"] == severity and match["timestamp"]
    assert line.endswith(f"+00:00 [{short}] classifier.app - scoring 'frames'")


def test_every_line_of_a_traceback_keeps_the_record_severity():
    try:
        raise ValueError("bad frame")
    except ValueError:
        line = SyslogSeverityFormatter().format(record(logging.ERROR, "failed", sys.exc_info()))
    lines = line.splitlines()
    assert len(lines) > 2
    assert all(part.startswith("<3> ") for part in lines)
    assert lines[-1] == "<3> ValueError: bad frame"
