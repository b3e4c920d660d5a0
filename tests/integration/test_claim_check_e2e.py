"""Frames over edgeHub's 256 KB limit, end to end on the simulator: the real frame-source and
classifier processes, started from the repository's deployment (base plus camera layer) with
a 1080p video whose frames encode to several hundred KB each. edgeHub would refuse them as
messages; they travel as claim checks on the volume both modules mount, and every one is
scored, upstream, and released from the volume."""

from __future__ import annotations

import json
from pathlib import Path

import av
import simplejpeg

from simulator.device.device import DeviceSettings
from simulator.device.runtime import ModuleCommand
from simulator.local.modules import repo_module_commands
from simulator.mqtt import EDGEHUB_MAX_MESSAGE_BYTES
from tests.integration.e2e_support import (
    DEVICE,
    SDK_SOCKET_LEAK,
    running_simulator,
    template_manifest,
    wait_upstream,
)
from tests.support.videos import make_video

pytestmark = SDK_SOCKET_LEAK

FRAMES = 12
QUALITY = 92
START_TIMEOUT_S = 120.0


def first_frame_jpeg_bytes(path: Path) -> int:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return len(simplejpeg.encode_jpeg(frame.to_ndarray(format="rgb24"), quality=QUALITY))


async def test_frames_too_large_for_edgehub_are_scored_through_claim_checks(tmp_path: Path) -> None:
    video = make_video(tmp_path / "hd.mp4", FRAMES, fps=10, width=1920, height=1080, noise=40)
    assert first_frame_jpeg_bytes(video.path) > EDGEHUB_MAX_MESSAGE_BYTES
    manifest = template_manifest()
    framesource = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"][
        "framesource"
    ]
    framesource["env"] = {
        name: {"value": value}
        for name, value in {
            "SOURCE_URL": str(video.path),
            "FPS": "0",
            "REALTIME": "false",
            "JPEG_QUALITY": str(QUALITY),
            "WIDTH": "0",
            "HEIGHT": "0",
        }.items()
    }
    claims: list[Path] = []

    def commands(device: DeviceSettings) -> dict[str, ModuleCommand]:
        made = repo_module_commands(device)
        claims.append(Path(made["framesource"].env["CLAIM_CHECK_DIR"]))
        return made

    async with running_simulator(manifest, commands) as sim:
        upstream = await wait_upstream(
            sim, FRAMES, module_id="classifier", timeout_s=START_TIMEOUT_S
        )
        log_path = sim.device(DEVICE).runtime.log_path("framesource")
        log = log_path.read_text(errors="replace")
        left = sorted(p.name for p in claims[0].iterdir())
    assert {m.output_name for m in upstream} == {"predictions"}, [
        m.message.body[:300] for m in upstream
    ]
    frame_ids = {json.loads(m.message.body)["frame"]["id"] for m in upstream}
    assert frame_ids == {f"framesource-{i}" for i in range(1, FRAMES + 1)}
    assert "could not be written" not in log and "too large" not in log
    assert left == []  # every file redeemed and released
