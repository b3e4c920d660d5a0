"""Splitting videos into shards: contiguous runs of frames, each scored on its own and retried
alone if it fails.

A shard is frames ``[first, last]`` (indices in presentation order) of one video, identified
by their presentation times, so no frame can fall between two shards or into both, however
the frame count divides. Boundaries move to the nearest keyframe when one is within half a
shard: decoding then starts right at the shard's first frame. The plan depends only on the
video and ``frames_per_shard``, so a local run and a Ray run score exactly the same shards,
batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from video_scoring.probe import VideoIndex


@dataclass(frozen=True)
class Shard:
    video: int  # the input's position on the command line
    number: int  # within the video
    path: Path
    first: int  # frame indices, inclusive
    last: int
    # Presentation times of the shard's frames (None: a video without timestamps, one shard).
    pts: tuple[int, ...] | None

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    @property
    def name(self) -> str:
        return f"{self.path.name}#{self.number}[{self.first}-{self.last}]"


def plan_shards(video: int, index: VideoIndex, frames_per_shard: int) -> list[Shard]:
    if frames_per_shard <= 0:
        raise ValueError("frames_per_shard must be positive")
    if index.frame_pts is None:
        return [Shard(video, 0, index.path, 0, index.frame_count - 1, None)]
    pts = index.frame_pts
    keyframes = [i for i, p in enumerate(pts) if p in index.keyframe_pts]
    starts = [0]
    target = frames_per_shard
    while target < len(pts):
        start = _nearest_keyframe(keyframes, target, frames_per_shard // 2)
        if start is None or start <= starts[-1]:
            start = target
        if len(pts) - start < max(1, frames_per_shard // 4):
            break  # a sliver at the end joins the last shard
        starts.append(start)
        target = start + frames_per_shard
    ends = [*(s - 1 for s in starts[1:]), len(pts) - 1]
    return [
        Shard(video, n, index.path, first, last, pts[first : last + 1])
        for n, (first, last) in enumerate(zip(starts, ends, strict=True))
    ]


def _nearest_keyframe(keyframes: list[int], target: int, reach: int) -> int | None:
    best = None
    for k in keyframes:
        if abs(k - target) <= reach and (best is None or abs(k - target) < abs(best - target)):
            best = k
    return best
