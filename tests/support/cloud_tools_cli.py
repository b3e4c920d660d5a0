"""``python -m cloud_tools`` as a user runs it, from a test whose event loop runs the
simulator: a separate process, waited for on a worker thread so the loop keeps serving it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


async def run_cloud_tools(
    env: Mapping[str, str], *args: str, timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    """Runs with this environment plus ``env`` (the tools' variables); output as text."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cloud_tools", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout_s,
        env={**os.environ, **env},
    )
