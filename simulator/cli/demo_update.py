"""The demo's model update: partway through, an operator pushes a second model version.

It goes the way a user's would: ``python -m cloud_tools`` processes with the environment that
``python -m simulator env`` prints. ``model stamp`` makes version 1.1.0 of the default model
(the same weights, so accuracy stays; a new sha256 and a golden self-test image of a star) and
``model push`` uploads it to the Blob Storage emulator, writes the module twin and follows the
module's reported state until it is active. Their output is shown with an ``operator>`` prefix.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from framesource.sources.synthetic import make_frame
from simulator.local.modules import REPO
from simulator.local.tool_env import tool_variables

DEFAULT_MODEL = REPO / "modules" / "classifier" / "models" / "seed-cnn-synth10.onnx"
SECOND_VERSION = "1.1.0"


async def run_operator(env: dict[str, str], *args: str) -> int:
    """``python -m cloud_tools ARGS`` as an operator runs it, its output shown as it comes."""
    print(f"operator> python -m cloud_tools {' '.join(args)}", flush=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cloud_tools",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async for line in process.stdout:
        print(f"operator> {line.decode(errors='replace').rstrip()}", flush=True)
    return await process.wait()


async def push_second_version(state_dir: Path, device_id: str) -> int:
    work = state_dir / "demo"
    work.mkdir(parents=True, exist_ok=True)
    golden = work / "golden-star.jpg"
    golden.write_bytes(make_frame("golden", 5, 3, 320, 240, 90).jpeg)
    model = work / f"seed-cnn-synth10-{SECOND_VERSION}.onnx"
    env = {**os.environ, **tool_variables(state_dir)}
    stamp = ("model", "stamp", str(DEFAULT_MODEL), "--out", str(model))
    code = await run_operator(env, *stamp, "--version", SECOND_VERSION, "--self-test", str(golden))
    if code != 0:
        return code
    return await run_operator(env, "model", "push", "--device", device_id, "--model", str(model))
