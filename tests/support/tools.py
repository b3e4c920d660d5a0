"""Tests that need a tool the project installs (.ci/run, scripts/bootstrap.sh) skip, saying
why, where it is missing; in CI (``EDGE_REQUIRE_TOOLS=1``) they fail instead."""

from __future__ import annotations

import os

import pytest


def require(missing: str | None) -> None:
    """``missing``: why the tool cannot be used here, or None when it can."""
    if missing is None:
        return
    if os.environ.get("EDGE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{missing} (.ci/run installs it)")
    pytest.skip(missing)
