"""Follows a module's reported ``modelUpdate`` after a push, printing each step once.

On a terminal the download progress redraws one line; elsewhere (CI logs, pipes) it prints a
line per 10%. ``update`` returns an exit code once the push is settled, None while it is not.
"""

from __future__ import annotations

from typing import Any, TextIO

from cloud_tools.errors import FAILED


class PushProgress:
    def __init__(self, out: TextIO, sha256: str, desired_version: int) -> None:
        self.out = out
        self.sha256 = sha256
        self.desired_version = desired_version
        self.last_line = "waiting for the module to read the desired properties"
        self._last_state: str | None = None
        self._last_decile = -1
        self._tty = out.isatty()

    def update(self, reported: dict[str, Any]) -> int | None:
        update = reported.get("modelUpdate") or {}
        seen = update.get("desiredVersion")
        if not isinstance(seen, int) or seen < self.desired_version:
            return None  # the module has not acted on this push yet
        target = update.get("target") or {}
        state = str(update.get("state"))
        if seen > self.desired_version and target.get("sha256") != self.sha256:
            self._say(f"superseded: the twin's desired $version is now {seen}")
            return FAILED
        if state == "downloading":
            self._progress(update.get("progress") or {})
            return None
        if state == self._last_state:
            return None
        self._last_state = state
        active = reported.get("model") or {}
        if state == "active" and active.get("sha256") == self.sha256:
            self._say(
                f"active: {active.get('name')} {active.get('version')} on "
                f"{active.get('provider')} since {active.get('activated_at')}"
            )
            return 0
        if state in ("failed", "rolled_back"):
            error = update.get("error") or {}
            self._say(f"{state}: {error.get('code')}: {error.get('reason')}")
            return FAILED
        self._say(f"{state}...")
        return None

    def _progress(self, progress: dict[str, Any]) -> None:
        received, total = progress.get("receivedBytes") or 0, progress.get("totalBytes")
        percent = progress.get("percent")
        text = f"downloading {received / 1e6:.1f} MB"
        if total:
            text += f" of {total / 1e6:.1f} MB ({percent}%)"
        self._last_state = "downloading"
        if self._tty:
            self.out.write("\r" + text.ljust(60))
            self.out.flush()
            self.last_line = text
            return
        decile = int((percent or 0) // 10)
        if decile != self._last_decile:
            self._last_decile = decile
            self._say(text)

    def _say(self, line: str) -> None:
        if self._tty and self.last_line.startswith("downloading"):
            self.out.write("\n")
        self.out.write(line + "\n")
        self.out.flush()
        self.last_line = line
