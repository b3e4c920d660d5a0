"""The operator tools' errors, and keeping secrets out of what they print.

Every command turns a failure into ``CliError`` with an exit code and a message that names the
problem; ``redact`` strips keys and SAS signatures from any text that came from elsewhere
(SDK exceptions quote URLs and connection strings).
"""

from __future__ import annotations

import re

# Exit codes: 1 the operation failed, 2 bad usage or missing configuration, 3 timed out.
FAILED, USAGE, TIMED_OUT = 1, 2, 3

_SECRETS = re.compile(
    r"(?i)(SharedAccessKey=|AccountKey=|SharedAccessSignature=|[?&]sig=|Authorization: )"
    r"[^;&\s'\"]+"
)


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(redact(message))
        self.exit_code = exit_code


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: m.group(1) + "***", text)
