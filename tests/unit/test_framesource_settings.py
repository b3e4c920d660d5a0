"""The frame source's settings: the environment at start-up and the twin's ``source``
section, each validated as a whole; URLs never shown with their credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_module.errors import SettingsError
from framesource.config import FrameSourceConfig
from framesource.settings import SourceKind, SourceSettings, redact, source_from_twin


def test_without_settings_the_source_is_the_synthetic_camera_at_ten_frames_a_second() -> None:
    config = FrameSourceConfig.from_env({})
    assert config.source.kind is SourceKind.SYNTHETIC and config.source.fps == 10
    assert config.output == "frames" and config.source_id == "framesource"
    assert config.hub.outbox.capacity == 64


def test_the_environment_sets_every_source_setting() -> None:
    config = FrameSourceConfig.from_env(
        {
            "SOURCE_URL": "rtsp://cam.local/stream1",
            "FPS": "5",
            "WIDTH": "640",
            "JPEG_QUALITY": "70",
            "RTSP_TRANSPORT": "udp",
            "READ_TIMEOUT_S": "3",
            "IOTEDGE_MODULEID": "dock-cam",
            "CLAIM_CHECK_ABOVE_BYTES": "100000",
        }
    )
    source = config.source
    assert (source.kind, source.fps, source.width, source.height) == (SourceKind.RTSP, 5, 640, 0)
    assert (source.jpeg_quality, source.rtsp_transport, source.read_timeout_s) == (70, "udp", 3)
    assert config.source_id == "dock-cam" and config.claim_checks.above_bytes == 100_000


def test_every_bad_variable_is_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as caught:
        FrameSourceConfig.from_env(
            {"FPS": "fast", "JPEG_QUALITY": "101", "SOURCE_URL": "ftp://x", "OUTBOX_CAPACITY": "0"}
        )
    text = str(caught.value)
    assert all(name in text for name in ("FPS", "JPEG_QUALITY", "SOURCE_URL", "OUTBOX_CAPACITY"))


def test_a_twin_section_overrides_the_environments_source_settings() -> None:
    base = SourceSettings(url="synthetic:", fps=10, width=320, height=240)
    applied = source_from_twin({"url": "rtsp://cam/1", "fps": 2, "loop": True}, base)
    assert (applied.url, applied.fps, applied.loop, applied.width) == ("rtsp://cam/1", 2, True, 320)


@pytest.mark.parametrize(
    "section",
    [
        {"fps": -1},
        {"fps": "ten"},
        {"fps": True},
        {"jpeg_quality": 0},
        {"url": "gopher://x"},
        {"url": 5},
        {"loop": "perhaps"},
        {"colour": "red"},
        {"url": "synthetic:", "fps": 0},
        "not an object",
    ],
)
def test_a_bad_twin_section_is_rejected_whole(section: object) -> None:
    with pytest.raises(SettingsError):
        source_from_twin(section, SourceSettings())


def test_file_folder_and_stream_urls_are_told_apart(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert SourceSettings(url=str(clip)).kind is SourceKind.FILE
    assert SourceSettings(url=f"file://{clip}").path == clip
    assert SourceSettings(url=str(tmp_path)).kind is SourceKind.FOLDER
    assert SourceSettings(url="https://cam/video.mjpg").kind is SourceKind.HTTP
    assert SourceSettings(url="rtsps://cam/1").kind is SourceKind.RTSP


def test_credentials_and_tokens_never_show() -> None:
    assert redact("rtsp://admin:hunter2@10.0.0.5:554/s1") == "rtsp://***@10.0.0.5:554/s1"
    assert redact("https://cam/video.mjpg?token=abc") == "https://cam/video.mjpg?***"
    described = SourceSettings(url="rtsp://u:p@cam/1").describe()
    assert "p@" not in str(described) and described["kind"] == "rtsp"
