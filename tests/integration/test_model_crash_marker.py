# mypy: disallow-untyped-calls=False
"""The crash-loop guard against a real process death: the classifier process, killed by
SIGKILL while it loads a pushed model, is restarted by the simulated runtime and does not load
that model again. This holds only if the mark naming the candidate is on disk before the load
starts; the module reports ``loading`` once it is."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.e2e_support import DEVICE, SDK_SOCKET_LEAK
from tests.integration.model_update_e2e_support import running_stack
from tests.support.tiny_models import write_slow_colour_model, write_versioned_colour_model

pytestmark = [pytest.mark.slow, SDK_SOCKET_LEAK]

# Seconds of matrix products per inference on a laptop core; loading runs two (warm-up and
# self-test), so the process is surely still loading when it is killed.
SLOW_ITERATIONS = 2000


async def test_a_process_killed_while_loading_a_model_does_not_load_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = write_versioned_colour_model(tmp_path / "v1.onnx", "1.0.0")
    slow = write_slow_colour_model(tmp_path / "slow.onnx", "2.0.0-slow", SLOW_ITERATIONS)
    async with running_stack(v1, monkeypatch) as stack:
        runtime = stack.sim.device(DEVICE).runtime
        version = await stack.push_uploaded(await stack.upload(slow))
        await stack.wait_update(version, "loading")
        first = runtime.module_reports()["classifier"].pid
        assert first is not None
        os.kill(first, signal.SIGKILL)  # as the OOM killer or a segfaulting runtime would

        update = await stack.wait_update(version, "failed", timeout_s=90)
        assert update["error"]["code"] == "crashed_while_loading", update
        assert runtime.module_reports()["classifier"].pid not in (None, first)
        assert stack.active()["version"] == "1.0.0"
