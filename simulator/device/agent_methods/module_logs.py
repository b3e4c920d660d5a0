"""One module's logs as edgeAgent's log methods give them: read, filtered, formatted, encoded.

The order of the steps is edgeAgent's (``LogsProvider``, ``LogsProcessor``): ``tail``,
``since`` and ``until`` go to the runtime with the request (so ``tail`` counts lines *before*
the other filters), then ``loglevel`` keeps lines whose syslog severity *equals* it and
``regex`` lines whose text it matches, then ``tail`` applies once more. Each line is read as
``<{severity}> {yyyy-MM-dd HH:mm:ss.fff zzz} {text}`` (``edge_module.log_format`` writes it);
a line without the ``<N>`` prefix counts as informational (6).

``text`` is the lines as the module wrote them; ``json`` is edgeAgent's ``ModuleLogMessage``
list (``iothub``, ``device``, ``id``, ``stream``, ``loglevel``, ``text``, ``timestamp``: the
time the runtime received the line). ``gzip`` compresses either.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulator.device.agent_methods.payloads import ContentEncoding, ContentType, LogFilter
from simulator.device.runtime import LocalRuntime, LogLine
from simulator.errors import RequestFailedError

__all__ = ["DEFAULT_SEVERITY", "LogFormat", "parse_line", "parse_time", "read_module_logs"]

DEFAULT_SEVERITY = 6
# edgeAgent's LogMessageParser pattern, less the Docker timestamp our lines do not carry.
_LINE = re.compile(
    r"^\s*(<(?P<level>\d)>)?\s*"
    r"((?P<stamp>\d{4}-\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}.\d{3}\s[+-]\d{2}:\d{2})\s)?\s*"
    r"(?P<text>.*)"
)
# humantime's units, which edgelet's parse_since accepts ("90m", "1 day", "2h 30min").
_UNIT_S = {
    **dict.fromkeys(("nsec", "ns"), 1e-9),
    **dict.fromkeys(("usec", "us"), 1e-6),
    **dict.fromkeys(("msec", "ms"), 1e-3),
    **dict.fromkeys(("seconds", "second", "sec", "s"), 1.0),
    **dict.fromkeys(("minutes", "minute", "min", "m"), 60.0),
    **dict.fromkeys(("hours", "hour", "hr", "h"), 3600.0),
    **dict.fromkeys(("days", "day", "d"), 86400.0),
    **dict.fromkeys(("weeks", "week", "w"), 7 * 86400.0),
    **dict.fromkeys(("months", "month", "M"), 30.44 * 86400.0),
    **dict.fromkeys(("years", "year", "y"), 365.25 * 86400.0),
}
_DURATION_PART = re.compile(r"\s*(\d+)\s*([A-Za-z]+)")


@dataclass(frozen=True)
class LogFormat:
    content_type: ContentType
    encoding: ContentEncoding
    iothub: str
    device_id: str


@dataclass(frozen=True)
class ParsedLine:
    level: int
    text: str  # without the severity prefix and the module's own timestamp


def parse_line(text: str) -> ParsedLine:
    match = _LINE.match(text)
    assert match is not None  # every group is optional
    level = match.group("level")
    return ParsedLine(int(level) if level else DEFAULT_SEVERITY, match.group("text"))


def parse_time(value: str, field: str, now: datetime) -> datetime:
    """``since``/``until`` as edgelet reads them: RFC 3339, a UNIX time in seconds, or a
    duration before ``now``. ``RequestFailedError`` ("invalid parameter: since") otherwise."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        pass
    else:
        if moment.tzinfo is not None:  # RFC 3339 requires the offset
            return moment.astimezone(UTC)
    if re.fullmatch(r"-?\d+", text):
        try:
            return datetime.fromtimestamp(int(text), UTC)
        except (OverflowError, OSError, ValueError):
            pass
    seconds = _duration_s(text)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    raise RequestFailedError(
        f"invalid parameter: {field} ({value!r} is not an RFC 3339 time, a UNIX time in "
        "seconds or a duration such as 90m or '1 day')"
    )


def _duration_s(text: str) -> float | None:
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None or match.group(2) not in _UNIT_S:
            return None
        total += int(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    return total if text else None


async def read_module_logs(
    runtime: LocalRuntime, module: str, log_filter: LogFilter, output: LogFormat
) -> bytes:
    """``module``'s logs, filtered and formatted as ``output`` asks."""
    now = datetime.now(UTC)
    since = parse_time(log_filter.since, "since", now) if log_filter.since else None
    until = parse_time(log_filter.until, "until", now) if log_filter.until else None
    lines = await runtime.module_logs(module, since, until, log_filter.tail)
    selected = [(line, parse_line(line.text)) for line in lines]
    if log_filter.loglevel is not None:
        selected = [(line, p) for line, p in selected if p.level == log_filter.loglevel]
    if log_filter.regex is not None:
        pattern = log_filter.regex
        selected = [(line, p) for line, p in selected if pattern.search(p.text)]
    if log_filter.tail is not None:
        selected = selected[max(0, len(selected) - log_filter.tail) :]
    if output.content_type is ContentType.JSON:
        body = json.dumps(
            [_message(line, parsed, module, output) for line, parsed in selected],
            separators=(",", ":"),
        ).encode()
    else:
        body = "".join(line.text + "\n" for line, _ in selected).encode()
    if output.encoding is ContentEncoding.GZIP:
        return gzip.compress(body)
    return body


def _message(
    line: LogLine, parsed: ParsedLine, module: str, output: LogFormat
) -> dict[str, object]:
    return {
        "iothub": output.iothub,
        "device": output.device_id,
        "id": module,
        "stream": "stdout",
        "loglevel": parsed.level,
        "text": parsed.text,
        "timestamp": line.timestamp.astimezone(UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z"),
    }
