"""Test videos made by the tests themselves, with PyAV: H.264 frames of the synthetic classes
(class ``i % 10`` in frame ``i``, so every frame has a known truth) and an AAC audio track.

Frame counts are chosen by the tests; ones that do not divide evenly by the shards a test
uses are the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

import synthdata


@dataclass(frozen=True)
class MadeVideo:
    path: Path
    frames: int
    fps: int
    width: int
    height: int
    audio_seconds: float

    def truth(self, index: int) -> str:
        return synthdata.LABELS[index % synthdata.NUM_CLASSES]


def make_video(
    path: Path,
    frames: int,
    fps: int = 25,
    width: int = 192,
    height: int = 144,
    gop: int = 10,
    audio: bool = True,
    seed: int = 7,
    noise: int = 0,
) -> MadeVideo:
    """An H.264 video (B-frames on: decode order differs from presentation order) with a
    keyframe every ``gop`` frames and, if ``audio``, a 440 Hz stereo AAC track as long.
    ``noise`` (0-255) adds grain that JPEG compresses badly: large frames for claim checks."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        if noise:
            video.options |= {"crf": "12"}  # keep the grain through the video codec
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=48_000)
            sound.layout = "stereo"
        samples_per_frame = 1_024
        audio_frames = math.ceil(frames / fps * 48_000 / samples_per_frame) if audio else 0
        for i in range(frames):
            rgb = synthdata.render(
                i % synthdata.NUM_CLASSES, synthdata.sample_rng(seed, i), width, height
            )
            if noise:
                grain = np.random.default_rng(i).integers(-noise, noise + 1, rgb.shape)
                rgb = np.clip(rgb.astype(np.int16) + grain, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for j in range(audio_frames):
            assert sound is not None
            t = (np.arange(samples_per_frame) + j * samples_per_frame) / 48_000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]), format="fltp", layout="stereo"
            )
            chunk.sample_rate = 48_000
            chunk.pts = j * samples_per_frame
            container.mux(sound.encode(chunk))
        if sound is not None:
            container.mux(sound.encode())
    seconds = audio_frames * samples_per_frame / 48_000
    return MadeVideo(path, frames, fps, width, height, seconds)


def count_decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def audio_streams(path: Path) -> list[tuple[str, float]]:
    """(codec, duration in seconds) of each audio stream."""
    with av.open(str(path)) as container:
        found = []
        for stream in container.streams.audio:
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else float(container.duration or 0) / av.time_base
            )
            found.append((stream.codec_context.name, duration))
        return found
