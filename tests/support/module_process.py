"""A module run as a process of its own by a test (``python -m classifier`` and the like):
its log, printed when the test fails, and stopping it by PID."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ModuleProcess:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log(self, tail_chars: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail_chars:]

    @contextlib.contextmanager
    def log_on_failure(self, tail_chars: int = 60_000) -> Iterator[None]:
        """Prints the module's log (pytest shows it with the failure) if the block fails."""
        try:
            yield
        except BaseException:
            print(f"--- {self.name} log (tail) ---\n{self.log(tail_chars)}")
            raise

    def kill(self) -> None:
        """SIGKILL by PID: no orderly shutdown, nothing flushed."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def wait(self, timeout_s: float) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    async def stop(self) -> int:
        """SIGTERM by PID, then SIGKILL if it does not end in time."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.kill()
        return await self.process.wait()
