"""Log lines in the format IoT Edge's log retrieval reads.

edgeAgent's ``GetModuleLogs`` / ``UploadModuleLogs`` filter by severity and time, parsing each
line as ``<{syslog severity}> {yyyy-MM-dd HH:mm:ss.fff zzz} {text}``; a line without the
``<N>`` prefix counts as informational, so unprefixed errors would hide from a ``loglevel: 3``
query. Every line of a multi-line record (a traceback) carries the record's severity.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

__all__ = ["SYSLOG_SEVERITY", "SyslogSeverityFormatter"]

# Python level -> syslog severity, as IoT Edge's own Logger maps its levels.
SYSLOG_SEVERITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
_SHORT = {2: "CRT", 3: "ERR", 4: "WRN", 6: "INF", 7: "DBG"}


def severity(level: int) -> int:
    """The syslog severity of a Python level; levels between the named ones round down."""
    for threshold in sorted(SYSLOG_SEVERITY, reverse=True):
        if level >= threshold:
            return SYSLOG_SEVERITY[threshold]
    return 7


class SyslogSeverityFormatter(logging.Formatter):
    """``<6> 2026-11-20 09:14:03.512 +00:00 [INF] classifier.app - scoring 'frames' ...``"""

    def format(self, record: logging.LogRecord) -> str:
        level = severity(record.levelno)
        stamp = datetime.fromtimestamp(record.created, UTC)
        when = f"{stamp:%Y-%m-%d %H:%M:%S}.{stamp.microsecond // 1000:03d} +00:00"
        text = f"[{_SHORT[level]}] {record.name} - {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        first, *rest = text.splitlines() or [""]
        return "\n".join([f"<{level}> {when} {first}", *(f"<{level}> {line}" for line in rest)])
