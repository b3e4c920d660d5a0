"""The frame source with real sources: test-made video files, image folders, the synthetic
camera, an MJPEG camera over HTTP and an RTSP camera (GStreamer's RTSP server), both of which
drop and come back; settings changed through the twin."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from framesource.sources.synthetic import make_frame
from tests.conftest import REPO
from tests.integration.framesource_support import pixels, running_source
from tests.support.mjpeg_server import mjpeg_camera
from tests.support.tools import require
from tests.support.videos import MadeVideo, make_video

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 103, fps=25, gop=10)


async def test_a_video_file_sends_every_frame_with_its_time_when_not_paced(clip: MadeVideo) -> None:
    env = {"SOURCE_URL": str(clip.path), "FPS": "0", "REALTIME": "false"}
    async with running_source(env) as source:
        await source.until(lambda: source.module.status()["state"] == "finished")
    assert len(source.sent) == clip.frames
    pts = [int(m.properties["pts_ms"]) for m in source.sent]
    assert pts == [round(i * 1000 / clip.fps) for i in range(clip.frames)]
    first = source.sent[0]
    assert first.message_id == "framesource-1" and first.properties["seq"] == "1"
    assert pixels(first).shape == (clip.height, clip.width, 3)


async def test_a_target_rate_skips_frames_by_their_timestamps(clip: MadeVideo) -> None:
    env = {"SOURCE_URL": str(clip.path), "FPS": "5", "REALTIME": "false", "WIDTH": "96"}
    async with running_source(env) as source:
        await source.until(lambda: source.module.status()["state"] == "finished")
    # 25 fps at 5 fps: frames 0, 5, 10, ... 100.
    assert [int(m.properties["pts_ms"]) for m in source.sent] == list(range(0, 4001, 200))
    assert pixels(source.sent[0]).shape == (72, 96, 3)  # the aspect kept
    assert source.module.status()["stats"]["skipped"] == clip.frames - 21


async def test_an_image_folder_sends_jpegs_as_they_are_and_skips_what_is_not_an_image(
    tmp_path: Path,
) -> None:
    jpeg = make_frame("f", 1, 3, 64, 48, 90).jpeg
    (tmp_path / "a.jpg").write_bytes(jpeg)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff not really")
    (tmp_path / "c.png").write_bytes(_png(make_frame("f", 1, 4, 32, 24, 90).jpeg))
    (tmp_path / "notes.txt").write_text("not an image")
    env = {"SOURCE_URL": str(tmp_path) + "/", "FPS": "50"}
    async with running_source(env) as source:
        await source.until(lambda: source.module.status()["state"] == "finished")
    assert [m.body == jpeg for m in source.sent] == [True, False]
    assert pixels(source.sent[1]).shape == (24, 32, 3)
    assert source.module.status()["stats"]["encode_failed"] == 1


async def test_the_synthetic_camera_sends_its_ground_truth() -> None:
    env = {
        "SOURCE_URL": "synthetic:",
        "FPS": "50",
        "FRAME_COUNT": "12",
        "WIDTH": "64",
        "HEIGHT": "48",
    }
    async with running_source(env) as source:
        await source.until(lambda: len(source.sent) == 12)
    truths = [m.properties["truth"] for m in source.sent]
    assert truths[:10] == sorted(set(truths), key=truths.index) and truths[10] == truths[0]


async def test_an_mjpeg_camera_that_drops_is_reconnected() -> None:
    async with mjpeg_camera(fps=20, frames=15) as url:
        env = {"SOURCE_URL": url, "FPS": "0", "READ_TIMEOUT_S": "3"}
        async with running_source(env) as source:
            await source.until(lambda: len(source.sent) >= 25, timeout_s=60)
            status = source.module.status()
    assert status["stats"]["reconnects"] >= 1 and status["counters"]["source_reconnects"] >= 1
    assert pixels(source.sent[0]).shape == (240, 320, 3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rtsp_server_missing() -> str | None:
    if shutil.which(SYSTEM_PYTHON) is None:
        return f"{SYSTEM_PYTHON} is missing"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, check=False)
    if done.returncode:
        return "GStreamer's RTSP server is not installed (python3-gi, gir1.2-gst-rtsp-server-1.0)"
    return None


class RtspCamera:
    def __init__(self, port: int, video: Path) -> None:
        self.port, self.video = port, video
        self.url = f"rtsp://127.0.0.1:{port}/camera"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(REPO / "tests" / "support" / "rtsp_server.py"),
                str(self.port),
                str(self.video),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    require(rtsp_server_missing())
    video = make_video(
        tmp_path / "camera.mp4", 300, fps=15, width=320, height=240, gop=15, audio=False
    )
    camera = RtspCamera(free_port(), video.path)
    camera.start()
    try:
        yield camera
    finally:
        camera.stop()


@pytest.mark.slow
async def test_an_rtsp_camera_is_read_at_the_target_rate_and_reconnected_after_it_drops(
    camera: RtspCamera,
) -> None:
    env = {"SOURCE_URL": camera.url, "FPS": "5", "READ_TIMEOUT_S": "3", "RECONNECT_MAX_S": "2"}
    async with running_source(env) as source:
        await source.until(lambda: len(source.sent) >= 8, timeout_s=60)
        before = source.module.status()["stats"]
        assert before["skipped"] >= before["sent"]  # 15 fps read, 5 sent
        await asyncio.to_thread(camera.stop)
        await source.until(lambda: source.module.status()["state"] == "reconnecting", timeout_s=30)
        count = len(source.sent)
        await asyncio.to_thread(camera.start)
        await source.until(lambda: len(source.sent) >= count + 5, timeout_s=60)
        after = source.module.status()
    assert after["state"] == "streaming" and after["stats"]["reconnects"] >= 1
    assert pixels(source.sent[-1]).shape == (240, 320, 3)


async def test_a_twin_change_switches_the_source_and_a_bad_one_is_rejected_whole(
    clip: MadeVideo,
) -> None:
    env = {"SOURCE_URL": "synthetic:", "FPS": "20", "WIDTH": "64", "HEIGHT": "48"}
    async with running_source(env) as source:
        await source.until(lambda: len(source.sent) >= 2)
        await source.hub.push_desired(
            {"source": {"url": str(clip.path), "fps": 0, "realtime": False}}
        )
        await source.until(lambda: source.module.status()["state"] == "finished")
        assert any("pts_ms" in m.properties for m in source.sent)
        await source.hub.push_desired({"source": {"fps": -3, "colour": "red"}})
        await source.until(
            lambda: source.hub.reported.get("settings", {}).get("status") == "rejected"
        )
        reported = source.hub.reported
    assert (
        "source.fps" in reported["settings"]["error"] and "colour" in reported["settings"]["error"]
    )
    assert reported["source"]["url"] == str(clip.path)  # the accepted source stays


def _png(jpeg: bytes) -> bytes:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    ok, png = cv2.imencode(".png", image)
    assert ok
    return png.tobytes()
