"""Shards cover every frame exactly once, whatever the count, and start at keyframes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from video_scoring.probe import VideoIndex
from video_scoring.shards import plan_shards


def index(frames: int, gop: int, pts_step: int = 512) -> VideoIndex:
    pts = tuple(i * pts_step for i in range(frames))
    return VideoIndex(
        Path("v.mp4"), pts, frames, frozenset(pts[::gop]), Fraction(1, 12_800), 25.0, 64, 48,
        "h264", 1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("frames", "per_shard", "gop"),
    [(103, 30, 10), (1031, 100, 12), (7, 3, 1), (1, 10, 5), (250, 250, 25)],
)
def test_every_frame_is_in_exactly_one_shard(frames: int, per_shard: int, gop: int) -> None:
    shards = plan_shards(0, index(frames, gop), per_shard)
    covered = [i for s in shards for i in range(s.first, s.last + 1)]
    assert covered == list(range(frames))
    assert all(s.pts == index(frames, gop).frame_pts[s.first : s.last + 1] for s in shards)  # type: ignore[index]


def test_shards_start_at_the_nearest_keyframe() -> None:
    video = index(1031, 12)
    shards = plan_shards(0, video, 100)
    assert all(s.pts is not None and s.pts[0] in video.keyframe_pts for s in shards)
    assert all(50 <= s.frames <= 150 for s in shards[:-1])


def test_a_video_without_timestamps_is_one_shard_in_decode_order() -> None:
    video = VideoIndex(
        Path("v.avi"), None, 40, frozenset(), Fraction(1, 25), 25.0, 8, 8, "mjpeg", 0
    )
    [shard] = plan_shards(0, video, 10)
    assert (shard.first, shard.last, shard.pts) == (0, 39, None)
