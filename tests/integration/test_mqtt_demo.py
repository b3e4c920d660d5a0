"""``scripts/demo.sh --mqtt`` (``python -m simulator.mqtt_demo``): both replicas score, and
no camera frame goes without an outcome."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import mosquitto
from tests.support.cloud_tools_cli import REPO
from tests.support.tools import require

pytestmark = pytest.mark.timeout(300)


def test_the_mqtt_demo_scores_on_both_replicas_with_no_frame_missing() -> None:
    require(mosquitto.missing())
    done = subprocess.run(
        [sys.executable, "-m", "simulator.mqtt_demo", "--duration", "10", "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    final = next(line for line in done.stdout.splitlines() if line.startswith("final: "))
    assert "frames missing 0" in final
    shares = re.findall(r"classifier-\d (\d+)", done.stdout.splitlines()[-1])
    assert len(shares) == 2 and all(int(n) > 0 for n in shares), done.stdout
