"""What a video holds, from one demuxing pass (no decoding): every video frame's presentation
time, which frames are keyframes, and whether there is audio.

Why demux first: it is fast (it reads the container, not the pixels), and it gives the frame
list the output is checked against, and the keyframes the shards start at, so a shard's
decoding starts exactly where it should without decoding frames only to throw them away.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from video_scoring.errors import VideoError


@dataclass(frozen=True)
class VideoIndex:
    path: Path
    # Presentation times (in ``time_base`` units) of every video frame, ascending; None when
    # the container gives frames no timestamps (then the video is one shard, in decode order).
    frame_pts: tuple[int, ...] | None
    frame_count: int
    keyframe_pts: frozenset[int]
    time_base: Fraction
    fps: float
    width: int
    height: int
    codec: str
    audio_streams: int

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)


def probe_video(path: Path) -> VideoIndex:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            pts: list[int] = []
            keyframes: set[int] = set()
            missing_pts = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker, not a frame
                if packet.pts is None:
                    missing_pts += 1
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.add(packet.pts)
            rate = stream.average_rate or stream.guessed_rate
            codec = stream.codec_context
            index = VideoIndex(
                path=path,
                frame_pts=None if missing_pts else tuple(sorted(pts)),
                frame_count=len(pts) + missing_pts,
                keyframe_pts=frozenset(keyframes),
                time_base=stream.time_base or Fraction(1, 90_000),
                fps=float(rate) if rate else 0.0,
                width=codec.width,
                height=codec.height,
                codec=codec.name,
                audio_streams=len(container.streams.audio),
            )
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: cannot be read: {e}") from e
    if index.frame_pts is not None and len(set(index.frame_pts)) != len(index.frame_pts):
        raise VideoError(f"{path}: two frames share a timestamp; cannot tell frames apart")
    if index.frame_count == 0:
        raise VideoError(f"{path}: the video stream has no frames")
    return index
