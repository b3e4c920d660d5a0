"""CI's short fuzzing budget: ``intake_fuzz`` in its own interpreter, so that its peak
resident set size is its own. Longer runs: ``python -m tests.fuzz.intake_fuzz --seconds N``."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

CI_EXAMPLES = 300


def test_fuzzed_frames_get_one_outcome_each_within_the_memory_bound() -> None:
    env = os.environ | {"PYTHONPATH": f"{REPO / 'modules' / 'classifier'}:{REPO}"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.intake_fuzz", "--examples", str(CI_EXAMPLES)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = [line for line in done.stdout.splitlines() if line.startswith("fuzz:")]
    print("\n".join(summary))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    assert summary and f"{CI_EXAMPLES} examples" in summary[0]
