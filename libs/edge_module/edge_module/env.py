"""Settings from the environment, read once at start-up and validated as a whole.

``EnvReader.get`` parses and range-checks one variable; a problem is recorded and the default
returned, so a module can read every setting and then refuse to start with one message that
names every problem, rather than stop at the first or run with a surprise default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(
        self,
        name: str,
        parse: Callable[[str], T],
        default: T,
        check: Callable[[T], bool] | None = None,
    ) -> T:
        """The variable parsed; the default when unset or blank, or (recorded) when bad."""
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = parse(raw.strip())
        except ValueError as e:
            self.problems.append(f"{name}={raw!r}: {e}")
            return default
        if check is not None and not check(value):
            self.problems.append(f"{name}={raw!r} is out of range")
            return default
        return value

    def text(self, name: str, default: str) -> str:
        """A name-like variable (an output's name, a path): its stripped value or ``default``."""
        return (self.env.get(name) or "").strip() or default


def boolean(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def positive(value: Any) -> bool:
    return bool(value > 0)


def choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def log_level(raw: str) -> str:
    # edgeAgent passes RuntimeLogLevel in lower case (info, debug, warning, error).
    value = raw.strip().upper()
    aliases = {"WARN": "WARNING", "VERBOSE": "DEBUG", "FATAL": "CRITICAL"}
    value = aliases.get(value, value)
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected debug, info, warning or error")
    return value


def module_log_level(reader: EnvReader) -> str:
    """``LOG_LEVEL``, else edgeAgent's ``RuntimeLogLevel``, else info."""
    return reader.get(
        "LOG_LEVEL", log_level, log_level(reader.env.get("RuntimeLogLevel") or "info")
    )
